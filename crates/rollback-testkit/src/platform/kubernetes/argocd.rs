//! The fake's Argo CD: its Application API (`argoproj.io/v1alpha1`: the discovery document
//! and the lists), served only when a test installs it
//! ([`super::FakeKubernetes::argo_cd_applications`]; otherwise its paths are `404`, as an API
//! server without Argo CD's custom resources answers), and its settings, the config map
//! `argocd-cm` in Argo CD's namespace (`argocd`, or another a test names:
//! `GET /api/v1/namespaces/{ns}/configmaps/{name}`), which the install makes (with no `data`)
//! unless a test says otherwise.

use serde_json::{Value, json};

use super::{FakeKubernetes, lock, query, status};
use crate::server::{RecordedRequest, Reply};

/// Argo CD's namespace in its install manifests.
pub(super) const NAMESPACE: &str = "argocd";
/// Argo CD's settings.
const SETTINGS: &str = "argocd-cm";

/// Argo CD's Applications and settings, when installed.
#[derive(Debug, Default)]
pub(super) struct ArgoCd {
    /// `(namespace, name)` of each Application; `None`: the API is not installed.
    pub(super) apps: Option<Vec<(String, String)>>,
    /// Whether the credentials may list Applications of every namespace (else `403` for the
    /// cluster-wide list, as with a Role in one namespace).
    pub(super) cluster_wide: bool,
    /// `argocd-cm` in Argo CD's namespace: `None` when there is none (`404`).
    pub(super) settings: Option<Vec<(String, String)>>,
    /// Argo CD's namespace, where `argocd-cm` is (`None`: `argocd`).
    pub(super) namespace: Option<String>,
    /// Whether the credentials may not read `argocd-cm` (`403`, whether or not it exists).
    pub(super) settings_forbidden: bool,
}

impl FakeKubernetes {
    /// Installs Argo CD's Application API with these `(namespace, name)` Applications, and its
    /// config map `argocd-cm` in namespace `argocd` with no `data` (as its install manifests
    /// make it); `cluster_wide`: whether the credentials may list the Applications of every
    /// namespace at once.
    pub fn argo_cd_applications(&self, apps: &[(&str, &str)], cluster_wide: bool) {
        let apps = apps.iter().map(|(ns, name)| ((*ns).to_owned(), (*name).to_owned())).collect();
        let mut st = lock(&self.state);
        st.argo.apps = Some(apps);
        st.argo.cluster_wide = cluster_wide;
        st.argo.settings.get_or_insert_with(Vec::new);
    }

    /// Argo CD's config map `argocd-cm` in namespace `argocd` holds `data` (e.g.
    /// `application.instanceLabelKey`); `None`: there is none (Argo CD is installed in another
    /// namespace, or not here).
    pub fn argo_cd_settings(&self, data: Option<&[(&str, &str)]>) {
        let data = data.map(|d| d.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        lock(&self.state).argo.settings = data;
    }

    /// Argo CD is installed in namespace `ns` (as Red Hat's GitOps operator puts it in `openshift-gitops`):
    /// its `argocd-cm` is there, not in `argocd`.
    pub fn argo_cd_namespace(&self, ns: &str) {
        lock(&self.state).argo.namespace = Some(ns.to_owned());
    }

    /// The credentials may not read ConfigMaps in Argo CD's namespace (`403`).
    pub fn argo_cd_settings_forbidden(&self, on: bool) {
        lock(&self.state).argo.settings_forbidden = on;
    }

    /// The paths of the requests to Argo CD's API (`/apis/argoproj.io/...`), in order.
    pub fn argo_cd_requests(&self) -> Vec<String> {
        self.requests().into_iter().filter(|r| r.path.starts_with("/apis/argoproj.io/")).map(|r| r.path).collect()
    }

    /// The paths of the requests for ConfigMaps (`/api/v1/namespaces/{ns}/configmaps/...`:
    /// Argo CD's settings), in order.
    pub fn config_map_requests(&self) -> Vec<String> {
        self.requests().into_iter().filter(|r| r.path.contains("/configmaps/")).map(|r| r.path).collect()
    }
}

/// `GET /api/v1/namespaces/{ns}/configmaps/{name}` (`rest`: the path after
/// `/api/v1/namespaces/`): `argocd-cm` in `argocd` as the install makes it; every other
/// config map of the fake is missing.
pub(super) fn config_map(argo: &ArgoCd, req: &RecordedRequest, rest: &str) -> Reply {
    let Some((ns, name)) =
        rest.split_once("/configmaps/").filter(|(ns, name)| !ns.contains('/') && !name.contains('/'))
    else {
        return status(404, "NotFound", "the server could not find the requested resource");
    };
    if req.method != "GET" {
        return status(405, "MethodNotAllowed", "forge-rollback only reads ConfigMaps");
    }
    let home = argo.namespace.as_deref().unwrap_or(NAMESPACE);
    // RBAC comes first: a `403` whether or not the object exists.
    if argo.settings_forbidden && ns == home {
        return status(
            403,
            "Forbidden",
            &format!(
                "configmaps \"{name}\" is forbidden: User \"ci\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"{ns}\""
            ),
        );
    }
    let data = match &argo.settings {
        Some(data) if ns == home && name == SETTINGS => data,
        _ => return status(404, "NotFound", &format!("configmaps \"{name}\" not found")),
    };
    let mut cm = json!({
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": SETTINGS, "namespace": home, "uid": "uid-argocd-cm", "resourceVersion": "4100",
                     "labels": {"app.kubernetes.io/name": SETTINGS, "app.kubernetes.io/part-of": "argocd"}},
    });
    // The API server leaves out an empty `data`, as the install's ConfigMap has.
    if !data.is_empty() {
        cm["data"] = data.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>().into();
    }
    Reply::json(200, &cm)
}

/// `GET /apis/argoproj.io/v1alpha1/applications` or `.../namespaces/{ns}/applications`
/// (`rest`: the path after `/apis/argoproj.io/`), lists only.
pub(super) fn applications(argo: &ArgoCd, req: &RecordedRequest, rest: &str) -> Reply {
    let Some(apps) = &argo.apps else {
        return status(404, "NotFound", "the server could not find the requested resource");
    };
    // The group version's discovery document (every authenticated user may read it).
    if rest == "v1alpha1" {
        if req.method != "GET" {
            return status(405, "MethodNotAllowed", "the discovery document is read only");
        }
        let verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
        return Reply::json(
            200,
            &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "argoproj.io/v1alpha1", "resources": [
                {"name": "applications", "singularName": "application", "namespaced": true, "kind": "Application", "verbs": verbs, "shortNames": ["app", "apps"]},
                {"name": "applicationsets", "singularName": "applicationset", "namespaced": true, "kind": "ApplicationSet", "verbs": verbs, "shortNames": ["appset", "appsets"]},
                {"name": "appprojects", "singularName": "appproject", "namespaced": true, "kind": "AppProject", "verbs": verbs, "shortNames": ["appproj", "appprojs"]},
            ]}),
        );
    }
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
