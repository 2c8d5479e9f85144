//! The checks of `[deploy]`'s Kubernetes keys (`namespace`, `deployment` or `statefulset`,
//! `container`, `kubeconfig`, `context`, `commit_annotation`, `argocd_instance_label`,
//! `argocd_namespace`): refused for other strategies; for `kubernetes`, exactly one workload, names the API server accepts,
//! and none of the other platforms' ids.

use super::{DeployConfig, DeployStrategy};

/// A Kubernetes object name (RFC 1123 subdomain: lowercase alphanumerics, `-` and `.`, at most
/// 253 characters, alphanumeric at both ends).
pub(crate) fn object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// An annotation key: an optional DNS prefix and `/`, then a name of at most 63 characters
/// of alphanumerics, `-`, `_` and `.`.
fn annotation_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    prefix.is_none_or(object_name)
        && !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

impl DeployConfig {
    /// The Kubernetes keys: refused for other strategies; checked for `kubernetes`.
    pub(super) fn validate_kubernetes(&self) -> Result<(), (String, String)> {
        let names = [
            ("namespace", &self.namespace),
            ("deployment", &self.deployment),
            ("statefulset", &self.statefulset),
            ("container", &self.container),
            ("argocd_namespace", &self.argocd_namespace),
            ("context", &self.context),
            ("commit_annotation", &self.commit_annotation),
            ("argocd_instance_label", &self.argocd_instance_label),
        ];
        if self.strategy != DeployStrategy::Kubernetes {
            let set = names.iter().find(|(_, v)| v.is_some()).map(|(k, _)| *k);
            let set = set
                .or(self.kubeconfig.as_ref().map(|_| "kubeconfig"))
                .or(self.migrate_command.as_ref().map(|_| "migrate_command"));
            if let Some(key) = set {
                return Err((
                    format!("deploy.{key}"),
                    format!("is for strategy `kubernetes`, not `{}`", self.strategy.as_str()),
                ));
            }
            return Ok(());
        }
        for (key, set) in [
            ("service_id", self.service_id.is_some()),
            ("app", self.app.is_some()),
            ("environment_id", self.environment_id.is_some()),
            ("token_env", self.token_env.is_some()),
        ] {
            if set {
                return Err((
                    format!("deploy.{key}"),
                    "is not used by strategy `kubernetes` (credentials come from the kubeconfig or the service account)"
                        .to_owned(),
                ));
            }
        }
        match (&self.deployment, &self.statefulset) {
            (None, None) => {
                return Err((
                    "deploy.deployment".into(),
                    "strategy `kubernetes` needs `deployment` or `statefulset`".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(("deploy.statefulset".into(), "set either `deployment` or `statefulset`, not both".into()));
            }
            _ => {}
        }
        for (key, value) in &names[..5] {
            if let Some(v) = value
                && !object_name(v)
            {
                return Err((format!("deploy.{key}"), format!("`{v}` is not a Kubernetes object name")));
            }
        }
        if let Some(c) = &self.context
            && (c.is_empty() || c.chars().any(char::is_control))
        {
            return Err(("deploy.context".into(), "names no context".into()));
        }
        if let Some(a) = &self.commit_annotation
            && !annotation_key(a)
        {
            return Err(("deploy.commit_annotation".into(), format!("`{a}` is not an annotation key")));
        }
        // A label key has an annotation key's form.
        if let Some(l) = &self.argocd_instance_label
            && !annotation_key(l)
        {
            return Err(("deploy.argocd_instance_label".into(), format!("`{l}` is not a label key")));
        }
        if let Some(argv) = &self.migrate_command
            && (argv.first().is_none_or(|a| a.trim().is_empty()) || argv.iter().any(|a| a.contains('\0')))
        {
            return Err((
                "deploy.migrate_command".into(),
                "must name a program, e.g. [\"alembic\", \"downgrade\", \"{revision}\"]".into(),
            ));
        }
        if self.kubeconfig.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(("deploy.kubeconfig".into(), "names no file".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_annotation_keys() {
        for ok in ["api", "web-1", "a.b"] {
            assert!(object_name(ok), "{ok}");
        }
        for bad in ["", "Api", "-a", "a-", "a_b", "a b"] {
            assert!(!object_name(bad), "{bad}");
        }
        for ok in ["forge-rollback/commit", "app.kubernetes.io/version", "commit"] {
            assert!(annotation_key(ok), "{ok}");
        }
        for bad in ["", "/x", "a/", "Bad_Prefix/x", "x y"] {
            assert!(!annotation_key(bad), "{bad}");
        }
    }
}
