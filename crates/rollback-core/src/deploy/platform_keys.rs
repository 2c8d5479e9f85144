//! The checks of `[deploy]`'s platform keys (`service_id`, `environment_id`, `app`,
//! `token_env`, `api_url`, `graphql_url`, the waits): required where the strategy needs them, refused where it
//! has no use for them.

use super::{DeployConfig, DeployStrategy};
use crate::verify::config::valid_secs;

/// A config key and its value, for the checks of the platform keys.
type Key<'a> = (&'a str, &'a Option<String>);

impl DeployConfig {
    /// The platform keys: required where the strategy needs them, refused where it has no use
    /// for them.
    pub(super) fn validate_platform(&self) -> Result<(), (String, String)> {
        self.validate_kubernetes()?;
        let given = [
            ("service_id", self.service_id.is_some()),
            ("app", self.app.is_some()),
            ("environment_id", self.environment_id.is_some()),
            ("token_env", self.token_env.is_some()),
            ("api_url", self.api_url.is_some()),
            ("graphql_url", self.graphql_url.is_some()),
        ];
        if !self.strategy.is_platform() {
            if let Some((key, _)) = given.iter().find(|(_, set)| *set) {
                return Err((
                    format!("deploy.{key}"),
                    format!(
                        "is for a platform strategy (`railway`, `render`, `heroku`, `fly`), not `{}`",
                        self.strategy.as_str()
                    ),
                ));
            }
            return Ok(());
        }
        if self.strategy == DeployStrategy::Render && self.environment_id.is_some() {
            return Err((
                "deploy.environment_id".into(),
                "is for `railway`; a Render service id names one environment already".into(),
            ));
        }
        let (required, unused): (&[Key<'_>], &[Key<'_>]) = match self.strategy {
            DeployStrategy::Railway => {
                (&[("service_id", &self.service_id), ("environment_id", &self.environment_id)], &[("app", &self.app)])
            }
            DeployStrategy::Heroku | DeployStrategy::Fly => {
                (&[("app", &self.app)], &[("service_id", &self.service_id), ("environment_id", &self.environment_id)])
            }
            // Checked by `validate_kubernetes`.
            DeployStrategy::Kubernetes => (&[], &[]),
            _ => (&[("service_id", &self.service_id)], &[("app", &self.app)]),
        };
        if let Some((key, _)) = unused.iter().find(|(_, v)| v.is_some()) {
            return Err((format!("deploy.{key}"), format!("is not used by strategy `{}`", self.strategy.as_str())));
        }
        for &(key, value) in required {
            match value {
                None => {
                    return Err((
                        format!("deploy.{key}"),
                        format!("is required by strategy `{}`", self.strategy.as_str()),
                    ));
                }
                Some(v) if v.trim().is_empty() || v.chars().any(char::is_control) => {
                    return Err((format!("deploy.{key}"), format!("`{v}` is not an id")));
                }
                Some(_) => {}
            }
        }
        if self.token_env.as_ref().is_some_and(|v| v.is_empty() || v.contains('=') || v.contains('\0')) {
            return Err(("deploy.token_env".into(), "names no environment variable".into()));
        }
        if self.strategy != DeployStrategy::Fly && self.graphql_url.is_some() {
            return Err(("deploy.graphql_url".into(), format!("is not used by strategy `{}`", self.strategy.as_str())));
        }
        for (key, url) in [("api_url", &self.api_url), ("graphql_url", &self.graphql_url)] {
            let Some(url) = url else { continue };
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| (format!("deploy.{key}"), format!("`{url}` is not a URL ({e})")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
                return Err((format!("deploy.{key}"), format!("`{url}` is not an http(s) URL with a host")));
            }
        }
        for (key, v) in [("live_timeout_secs", self.live_timeout_secs), ("poll_secs", self.poll_secs)] {
            if !valid_secs(v) {
                return Err((format!("deploy.{key}"), format!("must be more than 0 (got {v})")));
            }
        }
        Ok(())
    }
}
