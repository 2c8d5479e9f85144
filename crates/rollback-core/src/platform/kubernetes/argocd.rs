//! Argo CD's label tracking: before 3.0 (and since, with `application.resourceTrackingMethod:
//! label`), Argo CD marks what it deploys with a label alone, no `argocd.argoproj.io/*` key:
//! `<key>: <application>`, where the key is `application.instanceLabelKey` in its config map
//! `argocd-cm` (`app.kubernetes.io/instance` when unset). forge-rollback takes the key from
//! `[deploy] argocd_instance_label`, else from `argocd-cm` in Argo CD's namespace (`argocd`, or
//! `[deploy] argocd_namespace`).
//! Helm and many charts and operators set `app.kubernetes.io/instance` too, so the label is
//! taken for Argo CD only when the cluster's Argo CD API (`argoproj.io/v1alpha1` Applications)
//! lists an Application of that name; when that cannot be told, the operator is told what to
//! check rather than "nothing to freeze", unless `helm install` made the workload. When the key
//! cannot be learned (`argocd-cm` unreadable or elsewhere) and Argo CD is installed here, the
//! operator is told that a custom tracking label cannot be ruled out, and how to name it.
//!
//! The tracking method changes nothing in what is looked for: with `annotation` or
//! `annotation+label`, what Argo CD synced carries its `argocd.argoproj.io/tracking-id`
//! annotation (a mark found without this module), and what it has not synced since a switch
//! from `label` carries only the label while Argo CD still applies git over it (it matches its
//! manifests to live objects by kind and name, not by the mark).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Kubernetes;
use super::client::Client;
use super::rollout::{INSTANCE_LABEL, Workload, argo_cd_suspend};

/// Argo CD's Application API.
const APPLICATIONS: &str = "/apis/argoproj.io/v1alpha1";
/// The namespace Argo CD's install manifests use, where its settings and its Applications
/// live (unless they are in "any namespace", whose label value then names the namespace);
/// another one is named by `[deploy] argocd_namespace` (`openshift-gitops` for Red Hat's GitOps operator).
pub(super) const DEFAULT_NAMESPACE: &str = "argocd";
/// Argo CD's settings: the config map in its namespace.
const SETTINGS: &str = "argocd-cm";
/// The key of `argocd-cm` naming the tracking label (Argo CD's `settingsApplicationInstanceLabelKey`).
const INSTANCE_LABEL_KEY: &str = "application.instanceLabelKey";

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

#[derive(Debug, Deserialize)]
struct ConfigMap {
    #[serde(default)]
    data: BTreeMap<String, String>,
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
    /// Application, or (without an answer from Argo CD's API) is Helm's, or when Argo CD's
    /// tracking label cannot be learned and this cluster serves no Argo CD API.
    pub(super) async fn label_tracking(&self, client: &Client, w: &Workload) -> Option<String> {
        let key = match &self.argocd_instance_label {
            Some(key) => Ok(key.clone()),
            None => self.tracking_label(client).await,
        };
        let why = match key {
            Ok(key) => return self.by_label(client, w, &key).await,
            Err(why) => why,
        };
        // The key Argo CD would use is not known: its default is looked at, and then, as a
        // custom one cannot be ruled out, whether Argo CD is here at all, by its API's
        // discovery document (which every authenticated user may read, unlike the
        // Applications: a `403` there does not say that the API is served).
        if let Some(found) = self.by_label(client, w, INSTANCE_LABEL).await {
            return Some(found);
        }
        let here = match client.get::<serde::de::IgnoredAny>("reading Argo CD's API", APPLICATIONS).await {
            Ok(Some(_)) => "Argo CD is installed in this cluster".to_owned(),
            Ok(None) => return None,
            Err(e) => {
                format!("whether Argo CD is installed in this cluster cannot be told (reading its API failed: {e})")
            }
        };
        let (kind, workload, ns) = (self.kind.name(), &w.metadata.name, &self.namespace);
        Some(format!(
            "{here}, and the label it tracks what it deploys by cannot be learned ({why}): \
with label tracking (before Argo CD 3.0, or `application.resourceTrackingMethod: label`) it marks what it deploys only with the label \
`application.instanceLabelKey` names in its ConfigMap {SETTINGS} (`{INSTANCE_LABEL}` when unset), so no automatic deploy of {workload} was found for sure; \
check with `kubectl get configmap {SETTINGS} -n <Argo CD's namespace> -o jsonpath='{{.data.application\\.instanceLabelKey}}'` \
and `kubectl get {kind} {workload} -n {ns} --show-labels`; if {workload} carries that label, Argo CD deploys it (the value names the application): {}; \
set `argocd_instance_label` in `[deploy]` to that key (or grant `get` on the ConfigMap {SETTINGS} in namespace {argo_ns}, \
or name Argo CD's namespace in `argocd_namespace`) so forge-rollback can tell",
            argo_cd_suspend("<application>"),
            argo_ns = self.argocd_namespace
        ))
    }

    /// Argo CD's tracking label from its `argocd-cm` (`application.instanceLabelKey`; the
    /// default when unset or empty, as Argo CD reads it), or why it cannot be read.
    async fn tracking_label(&self, client: &Client) -> Result<String, String> {
        let ns = &self.argocd_namespace;
        let path = format!("/api/v1/namespaces/{ns}/configmaps/{SETTINGS}");
        match client.get_if_readable::<ConfigMap>("reading Argo CD's settings", &path).await {
            Ok(Ok(cm)) => Ok(cm
                .data
                .get(INSTANCE_LABEL_KEY)
                .filter(|k| !k.is_empty())
                .map_or(INSTANCE_LABEL, String::as_str)
                .to_owned()),
            Ok(Err(404)) => Err(format!(
                "namespace {ns} has no ConfigMap {SETTINGS}: Argo CD's settings are in another namespace (`argocd_namespace` in `[deploy]` names it) or cluster"
            )),
            Ok(Err(status)) => {
                Err(format!("these credentials may not read the ConfigMap {SETTINGS} in namespace {ns} ({status})"))
            }
            Err(e) => Err(format!("reading the ConfigMap {SETTINGS} in namespace {ns} failed: {e}")),
        }
    }

    /// What Argo CD's tracking label `key` on `w` says: Argo CD found, or a warning that it
    /// cannot be ruled out; `None` when the label is absent, names no Application, or (without
    /// an answer from Argo CD's API) is Helm's.
    async fn by_label(&self, client: &Client, w: &Workload, key: &str) -> Option<String> {
        let value = w.label(key)?;
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
                "Argo CD manages {workload} (application {app}, tracked by its label `{key}: {value}`): {}",
                argo_cd_suspend(&app)
            )),
            Found::No => None,
            Found::Unknown(_) if w.helm_release() => None,
            Found::Unknown(why) => Some(format!(
                "{workload} carries the label `{key}: {value}` and no Argo CD or Flux mark, so no automatic deploy was found for sure: \
Argo CD with label tracking (before 3.0, or `application.resourceTrackingMethod: label`) marks what it deploys by that label alone, and whether it has an application {app} cannot be told ({why}); \
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
        let ns = namespace.unwrap_or(&self.argocd_namespace);
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
