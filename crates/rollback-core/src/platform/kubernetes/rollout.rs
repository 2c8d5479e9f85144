//! The objects a rollback reads and what `kubectl rollout` makes of them: a workload's
//! revisions (a Deployment's ReplicaSets, a StatefulSet's ControllerRevisions), the commit a
//! revision's pod template carries, whether a rollout is complete (`kubectl rollout status`),
//! and who else deploys the workload (Argo CD, Flux).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::vcs::CommitId;

/// The label the Deployment controller adds to a ReplicaSet's template; not part of it.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The annotation holding a ReplicaSet's revision.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The pod-template annotation naming the commit, when `commit_annotation` is not set.
pub const DEFAULT_COMMIT_ANNOTATION: &str = "forge-rollback/commit";
/// The label Argo CD tracks resources by before 3.0 (its default "label" tracking method),
/// unless its `argocd-cm` config map names another (`application.instanceLabelKey`).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// The custom tracking label Argo CD's documentation suggests (`application.instanceLabelKey:
/// argocd.argoproj.io/instance`): an Argo CD mark by its prefix, the application its value.
const ARGO_CD_INSTANCE_LABEL: &str = "argocd.argoproj.io/instance";
/// The annotation `helm install` puts on what it makes.
const HELM_RELEASE_ANNOTATION: &str = "meta.helm.sh/release-name";
/// The pod-template annotation `kubectl rollout restart` sets (to the time of the restart).
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// `metadata`, the parts read.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Meta {
    /// The object's name.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    generation: i64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, rename = "ownerReferences")]
    owners: Vec<Owner>,
}

#[derive(Clone, Debug, Deserialize)]
struct Owner {
    uid: String,
}

impl Meta {
    fn owned_by(&self, uid: &str) -> bool {
        !uid.is_empty() && self.owners.iter().any(|o| o.uid == uid)
    }
}

/// A Deployment or a StatefulSet.
#[derive(Clone, Debug, Deserialize)]
pub struct Workload {
    /// Its metadata.
    pub metadata: Meta,
    spec: WorkloadSpec,
    #[serde(default)]
    status: WorkloadStatus,
}

#[derive(Clone, Debug, Deserialize)]
struct WorkloadSpec {
    replicas: Option<i64>,
    #[serde(default)]
    selector: Selector,
    template: Value,
    #[serde(default)]
    paused: bool,
    #[serde(default, rename = "updateStrategy")]
    update_strategy: Option<UpdateStrategy>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct Selector {
    #[serde(default, rename = "matchLabels")]
    match_labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
struct UpdateStrategy {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "rollingUpdate")]
    rolling_update: Option<RollingUpdate>,
}

#[derive(Clone, Debug, Deserialize)]
struct RollingUpdate {
    partition: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadStatus {
    #[serde(default)]
    observed_generation: i64,
    #[serde(default)]
    replicas: i64,
    #[serde(default)]
    updated_replicas: i64,
    #[serde(default)]
    available_replicas: i64,
    #[serde(default)]
    ready_replicas: i64,
    current_revision: Option<String>,
    update_revision: Option<String>,
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Clone, Debug, Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

/// A ReplicaSet: one revision of a Deployment.
#[derive(Clone, Debug, Deserialize)]
pub struct ReplicaSet {
    /// Its metadata.
    pub metadata: Meta,
    spec: ReplicaSetSpec,
}

#[derive(Clone, Debug, Deserialize)]
struct ReplicaSetSpec {
    #[serde(default)]
    template: Value,
}

/// A ControllerRevision: one revision of a StatefulSet.
#[derive(Clone, Debug, Deserialize)]
pub struct ControllerRevision {
    /// Its metadata.
    pub metadata: Meta,
    /// Its number.
    #[serde(default)]
    pub revision: i64,
    /// The strategic-merge patch that brings its template back
    /// (`{"spec":{"template":{..., "$patch":"replace"}}}`).
    #[serde(default)]
    pub data: Value,
}

/// One revision, whatever the workload's kind.
#[derive(Clone, Debug)]
pub struct Revision {
    /// The ReplicaSet's or ControllerRevision's name: stable across a rollback, which
    /// renumbers the revision but keeps its object (same template, same hash).
    pub name: String,
    /// Its number now.
    pub number: i64,
    /// Its pod template (without `pod-template-hash`).
    pub template: Value,
    /// What to send to make it live: the template (Deployment) or the revision's data
    /// (StatefulSet).
    pub patch: Value,
    /// The ReplicaSet's annotations (a Deployment's rollback copies them, as kubectl does).
    pub annotations: BTreeMap<String, String>,
}

/// Deployment annotations a rollback keeps rather than copy from the ReplicaSet (kubectl's
/// `annotationsToSkip`).
const KEPT_ANNOTATIONS: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

impl Workload {
    /// `?labelSelector=` for its revisions.
    pub fn selector_query(&self) -> String {
        let sel = self.spec.selector.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        crate::http::form_encode([("labelSelector", sel.as_str())])
    }

    /// Whether `spec.paused`.
    pub fn paused(&self) -> bool {
        self.spec.paused
    }

    /// Its pod template.
    pub fn template(&self) -> &Value {
        &self.spec.template
    }

    /// A StatefulSet's `status.updateRevision`.
    pub fn update_revision(&self) -> Option<&str> {
        self.status.update_revision.as_deref()
    }

    /// The Deployment's revisions: its ReplicaSets, by owner uid.
    pub fn replica_set_revisions(&self, sets: Vec<ReplicaSet>) -> Vec<Revision> {
        let mut out: Vec<Revision> = sets
            .into_iter()
            .filter(|rs| rs.metadata.owned_by(&self.metadata.uid))
            .filter_map(|rs| {
                let number = rs.metadata.annotations.get(REVISION_ANNOTATION)?.parse().ok()?;
                let template = without_hash(rs.spec.template);
                let annotations = rs.metadata.annotations;
                Some(Revision { name: rs.metadata.name, number, patch: template.clone(), template, annotations })
            })
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.number));
        out
    }

    /// The StatefulSet's revisions: its ControllerRevisions, by owner uid.
    pub fn controller_revisions(&self, revs: Vec<ControllerRevision>) -> Vec<Revision> {
        let mut out: Vec<Revision> = revs
            .into_iter()
            .filter(|cr| cr.metadata.owned_by(&self.metadata.uid))
            .map(|cr| {
                let mut template = cr.data.pointer("/spec/template").cloned().unwrap_or(Value::Null);
                if let Some(m) = template.as_object_mut() {
                    m.remove("$patch");
                }
                Revision {
                    name: cr.metadata.name,
                    number: cr.revision,
                    template,
                    patch: cr.data,
                    annotations: BTreeMap::new(),
                }
            })
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.number));
        out
    }

    /// The Deployment's annotations after a rollback to `rev`, as kubectl computes them: its
    /// own for the keys in `KEPT_ANNOTATIONS`, the ReplicaSet's for the rest.
    pub fn annotations_for(&self, rev: &Revision) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = KEPT_ANNOTATIONS
            .iter()
            .filter_map(|k| self.metadata.annotations.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        for (k, v) in &rev.annotations {
            if !KEPT_ANNOTATIONS.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// Whether the Deployment's template is `rev`'s (as kubectl's `EqualIgnoreHash`).
    pub fn runs(&self, rev: &Revision) -> bool {
        without_hash(self.spec.template.clone()) == rev.template
    }

    /// `kubectl rollout status` for a Deployment rolling out ReplicaSet `replica_set`:
    /// `Ok(None)` when complete, `Ok(Some(why))` while waiting, `Err` when it failed
    /// (`ProgressDeadlineExceeded`).
    ///
    /// Unlike kubectl, a deadline condition that names another ReplicaSet is waited past: the
    /// controller keeps the condition of the rollout this one replaced (the bad release a
    /// rollback moves away from) until the new one makes progress (`syncRolloutStatus`
    /// keeps a `ProgressDeadlineExceeded` it finds), and it writes its own as
    /// `ReplicaSet "<name>" has timed out progressing.`.
    pub fn deployment_status(&self, replica_set: &str) -> Result<Option<String>, String> {
        let (spec, st) = (&self.spec, &self.status);
        if self.metadata.generation > st.observed_generation {
            return Ok(Some("waiting for the deployment spec update to be observed".to_owned()));
        }
        if let Some(c) = st.conditions.iter().find(|c| c.kind == "Progressing")
            && c.reason == "ProgressDeadlineExceeded"
        {
            let named = c.message.strip_prefix("ReplicaSet \"").and_then(|m| m.split('"').next());
            match named {
                Some(other) if other != replica_set => {
                    return Ok(Some(format!(
                        "replicaset {other}, replaced by this rollout, had exceeded its progress deadline"
                    )));
                }
                _ => return Err(format!("exceeded its progress deadline: {}", c.message)),
            }
        }
        if let Some(want) = spec.replicas
            && st.updated_replicas < want
        {
            return Ok(Some(format!("{} out of {want} new replicas have been updated", st.updated_replicas)));
        }
        if st.replicas > st.updated_replicas {
            return Ok(Some(format!("{} old replicas are pending termination", st.replicas - st.updated_replicas)));
        }
        if st.available_replicas < st.updated_replicas {
            return Ok(Some(format!(
                "{} of {} updated replicas are available",
                st.available_replicas, st.updated_replicas
            )));
        }
        Ok(None)
    }

    /// `kubectl rollout status` for a StatefulSet.
    pub fn statefulset_status(&self) -> Result<Option<String>, String> {
        let (spec, st) = (&self.spec, &self.status);
        let strategy = spec.update_strategy.as_ref().and_then(|u| u.kind.as_deref()).unwrap_or("RollingUpdate");
        if strategy != "RollingUpdate" {
            return Err(format!("its update strategy is {strategy}: only RollingUpdate rolls out by itself"));
        }
        if st.observed_generation == 0 || self.metadata.generation > st.observed_generation {
            return Ok(Some("waiting for the statefulset spec update to be observed".to_owned()));
        }
        if let Some(want) = spec.replicas
            && st.ready_replicas < want
        {
            return Ok(Some(format!("{} of {want} pods are ready", st.ready_replicas)));
        }
        // As kubectl: with `rollingUpdate` set (the API server defaults it), the partition decides.
        if let Some(ru) = spec.update_strategy.as_ref().and_then(|u| u.rolling_update.as_ref()) {
            if let (Some(p), Some(want)) = (ru.partition, spec.replicas)
                && st.updated_replicas < want - p
            {
                return Ok(Some(format!("{} of {} partitioned pods are updated", st.updated_replicas, want - p)));
            }
            return Ok(None);
        }
        if st.update_revision != st.current_revision {
            return Ok(Some(format!(
                "rolling update to revision {} in progress",
                st.update_revision.as_deref().unwrap_or("?")
            )));
        }
        Ok(None)
    }

    /// The value of its label `key`, or else its pod template's: for Argo CD's tracking label
    /// (`app.kubernetes.io/instance` unless `argocd-cm` names another), which Argo CD before 3.0
    /// tracks what it deploys by (with no `argocd.argoproj.io/*` key), and which Helm and many
    /// charts and operators set too.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata
            .labels
            .get(key)
            .map(String::as_str)
            .or_else(|| self.spec.template.pointer("/metadata/labels").and_then(|l| l.get(key)).and_then(Value::as_str))
    }

    /// Whether `helm install` (or `upgrade`) made it: its `meta.helm.sh/release-name`
    /// annotation, which Argo CD's own rendering of a chart (`helm template`) does not set.
    pub fn helm_release(&self) -> bool {
        self.metadata.annotations.contains_key(HELM_RELEASE_ANNOTATION)
    }

    /// Argo CD or Flux owns the workload: what they are and how to stop them re-applying the
    /// release that was rolled back. Read from its labels and annotations only.
    pub fn gitops(&self, namespace: &str) -> Vec<String> {
        let m = &self.metadata;
        let keys: Vec<(&String, &String)> = m.labels.iter().chain(&m.annotations).collect();
        let mut out = Vec::new();
        if keys.iter().any(|(k, _)| k.starts_with("argocd.argoproj.io/")) {
            let app = m
                .annotations
                .get("argocd.argoproj.io/tracking-id")
                .and_then(|t| t.split(':').next())
                .or_else(|| m.labels.get(ARGO_CD_INSTANCE_LABEL).map(String::as_str))
                .or_else(|| m.labels.get(INSTANCE_LABEL).map(String::as_str))
                .unwrap_or("APP");
            out.push(format!("Argo CD manages {} (application {app}): {}", m.name, argo_cd_suspend(app)));
        }
        for (kind, prefix, what) in [
            ("kustomization", "kustomize.toolkit.fluxcd.io/", "Kustomization"),
            ("helmrelease", "helm.toolkit.fluxcd.io/", "HelmRelease"),
        ] {
            if keys.iter().any(|(k, _)| k.starts_with(prefix)) {
                let get = |key: &str| {
                    m.labels.get(&format!("{prefix}{key}")).or_else(|| m.annotations.get(&format!("{prefix}{key}")))
                };
                let name = get("name").map_or("NAME", String::as_str);
                let ns = get("namespace").map_or(namespace, String::as_str);
                out.push(format!(
                    "Flux manages {} ({what} {ns}/{name}): its next reconciliation re-applies the release in git; suspend it first with `flux suspend {kind} {name} -n {ns}`",
                    m.name
                ));
            }
        }
        out
    }
}

/// What Argo CD's auto-sync does to a rollback and how to stop it, for application `app`.
pub fn argo_cd_suspend(app: &str) -> String {
    format!(
        "auto-sync re-applies the release in git; suspend it first with `argocd app set {app} --sync-policy none`, and revert the commit in git before turning it back on"
    )
}

/// A template without the `pod-template-hash` label (and without an emptied `labels`).
fn without_hash(mut template: Value) -> Value {
    if let Some(labels) = template.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(HASH_LABEL);
    }
    template
}

/// A revision's template (without `pod-template-hash`) as it is whatever restarts it had: a
/// `kubectl rollout restart` changes only the `kubectl.kubernetes.io/restartedAt` annotation,
/// which makes a new revision of the same release (same image, command and env). A template
/// left with no annotations is the same as one that never had any.
pub fn release_template(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove(RESTARTED_AT);
        }
        if meta.get("annotations").is_some_and(|a| a.as_object().is_some_and(serde_json::Map::is_empty) || a.is_null())
        {
            meta.remove("annotations");
        }
    }
    t
}

/// The commit a pod template names: its `annotation` (a full id, or a prefix of `commit` when
/// one is given), else an image tag with a hex part of at least 7 digits that `commit` starts
/// with. `None` when neither.
pub fn template_commit(template: &Value, annotation: &str, commit: Option<&CommitId>) -> Option<CommitId> {
    let named = template.pointer("/metadata/annotations").and_then(|a| a.get(annotation)).and_then(Value::as_str);
    if let Some(v) = named.map(|v| v.trim().to_ascii_lowercase()) {
        if let Some(full) = CommitId::new(v.clone()) {
            return Some(full);
        }
        if let Some(c) = commit
            && v.len() >= 7
            && c.as_str().starts_with(&v)
        {
            return Some(c.clone());
        }
        return None;
    }
    let c = commit?;
    let containers = template.pointer("/spec/containers").and_then(Value::as_array)?;
    containers
        .iter()
        .filter_map(|k| k.get("image").and_then(Value::as_str))
        .any(|image| image_names(image, c))
        .then(|| c.clone())
}

/// Whether `image`'s tag names `commit` (`api:1a2b3c4`, `api:sha-1a2b3c4d`, `api:v2-1a2b3c4`).
fn image_names(image: &str, commit: &CommitId) -> bool {
    let image = image.split('@').next().unwrap_or(image);
    let Some((_, tag)) = image.rsplit_once(':').filter(|(repo, tag)| !tag.contains('/') && !repo.is_empty()) else {
        return false;
    };
    tag.split(['-', '_', '.']).any(|part| {
        let part = part.to_ascii_lowercase();
        part.len() >= 7 && part.bytes().all(|b| b.is_ascii_hexdigit()) && commit.as_str().starts_with(&part)
    })
}

/// The first container's image, for summaries.
pub fn first_image(template: &Value) -> Option<&str> {
    template.pointer("/spec/containers/0/image").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const C: &str = "1a2b3c4d5e6f708192a3b4c5d6e7f80912a3b4c5";

    #[test]
    fn commits_come_from_the_annotation_or_the_image_tag() {
        let c = CommitId::new(C).unwrap();
        let t = |ann: Value, image: &str| json!({"metadata": {"annotations": ann}, "spec": {"containers": [{"image": image}]}});
        assert_eq!(
            template_commit(&t(json!({"forge-rollback/commit": C}), "x:1"), DEFAULT_COMMIT_ANNOTATION, None),
            Some(c.clone())
        );
        assert_eq!(
            template_commit(
                &t(json!({"forge-rollback/commit": "1a2b3c4"}), "x:1"),
                DEFAULT_COMMIT_ANNOTATION,
                Some(&c)
            ),
            Some(c.clone())
        );
        // An annotation naming another commit wins over a matching image tag.
        assert_eq!(
            template_commit(
                &t(json!({"forge-rollback/commit": "fffffff"}), "x:1a2b3c4"),
                DEFAULT_COMMIT_ANNOTATION,
                Some(&c)
            ),
            None
        );
        for image in ["reg.io:5000/api:1a2b3c4", "api:sha-1a2b3c4d", "api:v2.1-1A2B3C4D5E", "api:1a2b3c4@sha256:00"] {
            assert_eq!(
                template_commit(&t(json!({}), image), DEFAULT_COMMIT_ANNOTATION, Some(&c)),
                Some(c.clone()),
                "{image}"
            );
        }
        for image in ["api:1a2b3c", "api:latest", "reg.io:5000/1a2b3c4d", "api:2b3c4d5e"] {
            assert_eq!(template_commit(&t(json!({}), image), DEFAULT_COMMIT_ANNOTATION, Some(&c)), None, "{image}");
        }
    }

    #[test]
    fn the_instance_label_is_the_workloads_or_else_its_pod_templates() {
        let w = |labels: Value, template_labels: Value, annotations: Value| -> Workload {
            serde_json::from_value(json!({
                "metadata": {"name": "api", "labels": labels, "annotations": annotations},
                "spec": {"template": {"metadata": {"labels": template_labels}}},
            }))
            .unwrap()
        };
        let none = json!({});
        let both = w(json!({INSTANCE_LABEL: "shop"}), json!({INSTANCE_LABEL: "chart"}), none.clone());
        assert_eq!(both.label(INSTANCE_LABEL), Some("shop"));
        assert!(!both.helm_release());
        assert_eq!(
            w(none.clone(), json!({INSTANCE_LABEL: "chart"}), none.clone()).label(INSTANCE_LABEL),
            Some("chart")
        );
        assert_eq!(w(json!({"app": "api"}), json!({"app": "api"}), none.clone()).label(INSTANCE_LABEL), None);
        let helm = w(json!({INSTANCE_LABEL: "shop"}), none.clone(), json!({HELM_RELEASE_ANNOTATION: "shop"}));
        assert!(helm.helm_release());
        // Neither counts as an Argo CD mark by itself.
        assert!(helm.gitops("prod").is_empty() && both.gitops("prod").is_empty());
        // The custom tracking label Argo CD's documentation suggests is a mark, and names the
        // application.
        let custom = w(json!({ARGO_CD_INSTANCE_LABEL: "shop"}), none.clone(), none.clone());
        let found = custom.gitops("prod");
        assert!(found.len() == 1 && found[0].starts_with("Argo CD manages api (application shop)"), "{found:?}");
    }

    #[test]
    fn a_restart_leaves_the_release_template_as_it_was() {
        let t = json!({"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"image": "api:1"}]}});
        let mut restarted = t.clone();
        restarted["metadata"]["annotations"] = json!({RESTARTED_AT: "2026-12-06T09:40:00Z"});
        assert_eq!(release_template(&restarted), release_template(&t));
        let mut annotated = t.clone();
        annotated["metadata"]["annotations"] = json!({"team": "pay"});
        let mut both = annotated.clone();
        both["metadata"]["annotations"][RESTARTED_AT] = json!("2026-12-06T09:40:00Z");
        assert_eq!(release_template(&both), release_template(&annotated));
        // Anything else is another release: another annotation, another image.
        assert_ne!(release_template(&annotated), release_template(&t));
        let mut image = restarted.clone();
        image["spec"]["containers"][0]["image"] = json!("api:2");
        assert_ne!(release_template(&image), release_template(&t));
    }
}
