//! The fake's Argo CD Application API (`argoproj.io/v1alpha1`), served only when a test
//! installs it ([`super::FakeKubernetes::argo_cd_applications`]); otherwise its paths are
//! `404`, as an API server without Argo CD's custom resources answers.

use serde_json::{Value, json};

use super::{query, status};
use crate::server::{RecordedRequest, Reply};

/// Argo CD's Applications, when installed.
#[derive(Debug, Default)]
pub(super) struct ArgoCd {
    /// `(namespace, name)` of each Application; `None`: the API is not installed.
    pub(super) apps: Option<Vec<(String, String)>>,
    /// Whether the credentials may list Applications of every namespace (else `403` for the
    /// cluster-wide list, as with a Role in one namespace).
    pub(super) cluster_wide: bool,
}

/// `GET /apis/argoproj.io/v1alpha1/applications` or `.../namespaces/{ns}/applications`
/// (`rest`: the path after `/apis/argoproj.io/`), lists only.
pub(super) fn applications(argo: &ArgoCd, req: &RecordedRequest, rest: &str) -> Reply {
    let Some(apps) = &argo.apps else {
        return status(404, "NotFound", "the server could not find the requested resource");
    };
    let namespace = match rest.strip_prefix("v1alpha1/") {
        Some("applications") => None,
        Some(r) => match r.strip_prefix("namespaces/").and_then(|r| r.strip_suffix("/applications")) {
            Some(ns) if !ns.contains('/') => Some(ns),
            _ => return status(404, "NotFound", "the server could not find the requested resource"),
        },
        None => return status(404, "NotFound", "the server could not find the requested resource"),
    };
    if req.method != "GET" {
        return status(405, "MethodNotAllowed", "forge-rollback only reads Argo CD applications");
    }
    if query(&req.path, "limit").is_none() {
        return status(400, "BadRequest", "expected a paged list (`limit`)");
    }
    if namespace.is_none() && !argo.cluster_wide {
        return status(
            403,
            "Forbidden",
            "applications.argoproj.io is forbidden: User \"ci\" cannot list resource \"applications\" in API group \"argoproj.io\" at the cluster scope",
        );
    }
    let items: Vec<Value> = apps
        .iter()
        .filter(|(ns, _)| namespace.is_none_or(|want| want == ns))
        .map(|(ns, name)| {
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": name, "namespace": ns},
                   "spec": {"syncPolicy": {"automated": {"prune": true, "selfHeal": true}}}})
        })
        .collect();
    Reply::json(
        200,
        &json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationList", "metadata": {"resourceVersion": "7000"}, "items": items}),
    )
}
