//! The secrets of the sections a check does not hold, gathered when the configuration is
//! loaded so that every check's reason is scrubbed of them: a `command` check's program may
//! print `$DATABASE_URL` in its error, a service may quote a deploy token.

use crate::db::DatabaseConfig;
use crate::deploy::{DeployConfig, DeployStrategy};
use crate::notify::NotifyConfig;
use crate::secret::{Secret, Secrets};

/// The database URL (its password with it), the deploy hook and platform token, and every
/// webhook's URL, signing secret, routing key and token: the values written in the
/// configuration and the environment variables named for them.
pub(super) fn of(database: Option<&DatabaseConfig>, deploy: Option<&DeployConfig>, notify: &[NotifyConfig]) -> Secrets {
    let mut out = Secrets::default();
    let mut add = |key: &str, inline: Option<&Secret>, var: Option<&str>| {
        if let Some(s) = inline {
            out.add(key, s);
        }
        if let Some(v) = var {
            out.add_env(v);
        }
    };
    if let Some(db) = database {
        add("database.url", db.url.as_ref(), db.url_env.as_deref());
    }
    if let Some(d) = deploy {
        add("deploy.hook_url", d.hook_url.as_ref(), d.hook_url_env.as_deref());
        let platform_default = match d.strategy {
            DeployStrategy::Railway => Some(crate::platform::railway::DEFAULT_TOKEN_ENV),
            DeployStrategy::Render => Some(crate::platform::render::DEFAULT_TOKEN_ENV),
            DeployStrategy::Heroku => Some(crate::platform::heroku::DEFAULT_TOKEN_ENV),
            DeployStrategy::Fly => Some(crate::platform::fly::DEFAULT_TOKEN_ENV),
            _ => None,
        };
        add("deploy.token", None, d.token_env.as_deref().or(platform_default));
    }
    for (i, n) in notify.iter().enumerate() {
        add(&format!("notify[{i}].url"), n.url.as_ref(), n.url_env.as_deref());
        add(&format!("notify[{i}].secret"), n.secret.as_ref(), n.secret_env.as_deref());
        add(&format!("notify[{i}].routing_key"), n.routing_key.as_ref(), n.routing_key_env.as_deref());
        add(&format!("notify[{i}].token"), n.token.as_ref(), n.token_env.as_deref());
    }
    out
}

impl super::Config {
    /// What to know about this configuration that does not keep it from loading, one sentence
    /// each, for the front-ends to show when it is loaded: a secret too short to be scrubbed
    /// from check reasons and restart output (the environment read now).
    pub fn warnings(&self) -> Vec<String> {
        crate::verify::redact::all_secrets(&self.verify, &self.checks).too_short()
    }
}
