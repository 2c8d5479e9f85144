//! Argo CD's label tracking: before 3.0, Argo CD marks what it deploys with the label
//! `app.kubernetes.io/instance: <application>` alone (no `argocd.argoproj.io/*` key). Helm and
//! many charts and operators set that label too, so it is taken for Argo CD only when the
//! cluster's Argo CD API (`argoproj.io/v1alpha1` Applications) lists an Application of that
//! name; when that cannot be told, the operator is told what to check rather than "nothing to
//! freeze", unless `helm install` made the workload.

use serde::Deserialize;

use super::Kubernetes;
use super::client::Client;
use super::rollout::{INSTANCE_LABEL, Workload, argo_cd_suspend};

/// Argo CD's Application API.
const APPLICATIONS: &str = "/apis/argoproj.io/v1alpha1";
/// The namespace Argo CD's install manifests use, where its Applications live unless they
/// are in "any namespace" (whose label value then names the namespace).
const ARGO_CD_NAMESPACE: &str = "argocd";

#[derive(Debug, Deserialize)]
struct Application {
    metadata: AppMeta,
}

#[derive(Debug, Deserialize)]
struct AppMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

/// What the Application API says about the application a label names.
enum Found {
    /// It exists.
    Yes,
    /// It does not: the label is someone else's.
    No,
    /// It cannot be told, and why.
    Unknown(String),
}

impl Kubernetes {
    /// For a workload with no Argo CD or Flux mark: Argo CD found by its tracking label, or a
    /// warning that it cannot be ruled out; `None` when the label is absent, names no
    /// Application, or (without an answer from Argo CD's API) is Helm's.
    pub(super) async fn label_tracking(&self, client: &Client, w: &Workload) -> Option<String> {
        let value = w.instance_label()?;
        // An Application outside Argo CD's own namespace is tracked as `<namespace>_<name>`
        // (a Kubernetes name has no `_`); the CLI names it `<namespace>/<name>`.
        let (namespace, name) = match value.split_once('_') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, value),
        };
        let app = namespace.map_or_else(|| name.to_owned(), |ns| format!("{ns}/{name}"));
        let workload = &w.metadata.name;
        match self.application(client, namespace, name).await {
            Found::Yes => Some(format!(
                "Argo CD manages {workload} (application {app}, tracked by its label `{INSTANCE_LABEL}: {value}`): {}",
                argo_cd_suspend(&app)
            )),
            Found::No => None,
            Found::Unknown(_) if w.helm_release() => None,
            Found::Unknown(why) => Some(format!(
                "{workload} carries the label `{INSTANCE_LABEL}: {value}` and no Argo CD or Flux mark, so no automatic deploy was found for sure: \
Argo CD before 3.0 tracks what it deploys by that label alone (label tracking), and whether it has an application {app} cannot be told ({why}); \
check with `argocd app get {app}`; if it exists, {}",
                argo_cd_suspend(&app)
            )),
        }
    }

    /// Whether Argo CD has application `name` (in `namespace`, when the label names one):
    /// every Application when the credentials may list them all, else those of its
    /// namespace.
    async fn application(&self, client: &Client, namespace: Option<&str>, name: &str) -> Found {
        let what = "listing Argo CD applications";
        let matches = |apps: &[Application]| {
            apps.iter().any(|a| a.metadata.name == name && namespace.is_none_or(|ns| a.metadata.namespace == ns))
        };
        match client.list_if_readable::<Application>(what, &format!("{APPLICATIONS}/applications")).await {
            Ok(Ok(apps)) => return if matches(&apps) { Found::Yes } else { Found::No },
            // The API server serves no such resource: Argo CD is not installed here, but an
            // Argo CD in another cluster may deploy to this one.
            Ok(Err(404)) => {
                return Found::Unknown(
                    "this cluster serves no Argo CD Application API; an Argo CD elsewhere may deploy here".to_owned(),
                );
            }
            Ok(Err(_forbidden)) => {}
            Err(e) => return Found::Unknown(format!("listing its applications failed: {e}")),
        }
        let ns = namespace.unwrap_or(ARGO_CD_NAMESPACE);
        let path = format!("{APPLICATIONS}/namespaces/{ns}/applications");
        match client.list_if_readable::<Application>(what, &path).await {
            Ok(Ok(apps)) if matches(&apps) => Found::Yes,
            // Its own namespace named by the label: a definite answer.
            Ok(Ok(_)) if namespace.is_some() => Found::No,
            Ok(Ok(_)) => Found::Unknown(format!(
                "none in namespace {ns}, and these credentials may not list the applications of other namespaces"
            )),
            Ok(Err(status)) => Found::Unknown(format!(
                "these credentials may not list Argo CD applications ({status}); `list` on `applications.argoproj.io` lets forge-rollback tell"
            )),
            Err(e) => Found::Unknown(format!("listing its applications failed: {e}")),
        }
    }
}
