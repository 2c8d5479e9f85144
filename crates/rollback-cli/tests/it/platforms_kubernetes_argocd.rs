//! Argo CD's label tracking through the binary, against `FakeKubernetes` with Argo CD's
//! Application API and its `argocd-cm` config map: the tracking label (the default, or the one
//! `application.instanceLabelKey` or `[deploy] argocd_instance_label` names) looked up among
//! the Applications listed cluster-wide or per namespace; the label with no Argo CD API to ask;
//! a Helm release; an Argo CD whose tracking label cannot be learned.

use crate::platforms_kubernetes::{Setup, setup};

/// The messages of `plan --json`'s `production_auto_sync` risks.
fn auto_sync_risks(s: &Setup) -> Vec<String> {
    let plan = s.fr(&["plan", "--fast", "--target", "v1", "--json"]).json();
    let risks = plan["risks"].as_array().cloned().unwrap_or_default();
    let codes = |r: &serde_json::Value| r["code"] == "production_auto_sync" || r["code"] == "no_autodeploy_switch";
    risks.iter().filter(|r| codes(r)).map(|r| r["message"].as_str().unwrap_or("").to_owned()).collect()
}

/// The one auto-sync risk: Argo CD's application `shop` manages the workload, tracked by its
/// label `label: shop`.
fn assert_managed_as_shop(s: &Setup, label: &str) {
    let risks = auto_sync_risks(s);
    assert_eq!(risks.len(), 1, "{risks:?}");
    let expected = format!("Argo CD manages api (application shop, tracked by its label `{label}: shop`)");
    assert!(risks[0].starts_with(&expected), "{risks:?}");
}

/// A Deployment labelled `app.kubernetes.io/instance: <value>` and nothing else of Argo CD's.
fn instance_labelled(value: &str) -> Setup {
    let s = setup(&[0, 1, 2]);
    s.f.mark(true, "app.kubernetes.io/instance", value);
    s
}

#[test]
fn argo_cd_tracking_by_the_instance_label_is_named_when_its_application_exists() {
    // Every Application listed at once.
    let s = instance_labelled("shop");
    s.f.argo_cd_applications(&[("argocd", "other"), ("argocd", "shop")], true);
    assert_managed_as_shop(&s, "app.kubernetes.io/instance");
    assert_eq!(s.f.argo_cd_requests()[0], "/apis/argoproj.io/v1alpha1/applications?limit=100");
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"]);
    out.ok();
    assert!(out.stderr.contains("argocd app set shop --sync-policy none"), "{}", out.stderr);
    assert!(!out.stderr.contains("nothing to freeze"), "{}", out.stderr);

    // Credentials that may list Applications only per namespace: Argo CD's own, or the one an
    // "apps in any namespace" label (`<namespace>_<name>`) names.
    for (label, ns, app) in [("shop", "argocd", "shop"), ("team_shop", "team", "team/shop")] {
        let s = instance_labelled(label);
        s.f.argo_cd_applications(&[(ns, "shop")], false);
        let risks = auto_sync_risks(&s);
        assert_eq!(risks.len(), 1, "{risks:?}");
        assert!(risks[0].starts_with(&format!("Argo CD manages api (application {app}, tracked")), "{risks:?}");
        assert!(risks[0].contains(&format!("argocd app set {app} --sync-policy none")), "{risks:?}");
        let asked = s.f.argo_cd_requests();
        assert_eq!(asked[1], format!("/apis/argoproj.io/v1alpha1/namespaces/{ns}/applications?limit=100"), "{asked:?}");
    }
}

#[test]
fn an_instance_label_argo_cd_cannot_be_asked_about_is_not_called_nothing_to_freeze() {
    // No Argo CD API (`404`): label tracking named, with how to check and suspend.
    let s = instance_labelled("shop");
    let risks = auto_sync_risks(&s);
    assert_eq!(risks.len(), 1, "{risks:?}");
    for part in [
        "no automatic deploy was found for sure",
        "label tracking",
        "argocd app get shop",
        "no Argo CD Application API",
    ] {
        assert!(risks[0].contains(part), "{part}: {risks:?}");
    }
    assert!(!s.f.argo_cd_requests().is_empty());
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"]);
    out.ok();
    assert!(!out.stderr.contains("nothing to freeze"), "{}", out.stderr);
    assert!(out.stderr.contains("[WARN]") && out.stderr.contains("label tracking"), "{}", out.stderr);
    assert!(out.stderr.contains("argocd app set shop --sync-policy none"), "{}", out.stderr);

    // Argo CD is there and has no such Application: the label is someone else's.
    let s = instance_labelled("shop");
    s.f.argo_cd_applications(&[("argocd", "billing")], true);
    assert_eq!(auto_sync_risks(&s), Vec::<String>::new());
    assert_eq!(s.f.argo_cd_requests().len(), 1);
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"]);
    out.ok();
    assert!(out.stderr.contains("nothing to freeze"), "{}", out.stderr);
}

#[test]
fn a_helm_release_is_not_taken_for_argo_cd_unless_argo_cd_has_its_application() {
    // `helm install` labels what it makes too: with no Argo CD API, as without the label.
    let s = instance_labelled("shop");
    s.f.mark(false, "meta.helm.sh/release-name", "shop");
    assert_eq!(auto_sync_risks(&s), Vec::<String>::new());
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"]);
    out.ok();
    assert!(
        out.stderr.contains("no automatic deploys found (no Argo CD or Flux marks): nothing to freeze"),
        "{}",
        out.stderr
    );
    assert!(!s.f.argo_cd_requests().is_empty(), "Argo CD's API was asked");

    // An Application of that name: Argo CD deploys it.
    let s = instance_labelled("shop");
    s.f.mark(false, "meta.helm.sh/release-name", "shop");
    s.f.argo_cd_applications(&[("argocd", "shop")], true);
    let risks = auto_sync_risks(&s);
    assert!(risks.len() == 1 && risks[0].starts_with("Argo CD manages api (application shop, tracked"), "{risks:?}");
}

/// Argo CD installed with Application `shop`; the Deployment labelled `mycompany.com/appname:
/// shop`, the custom tracking label of the example in Argo CD's `argocd-cm.yaml`.
fn custom_labelled() -> Setup {
    let s = setup(&[0, 1, 2]);
    s.f.mark(true, "mycompany.com/appname", "shop");
    s.f.argo_cd_applications(&[("argocd", "shop")], true);
    s
}

#[test]
fn a_custom_tracking_label_named_in_argocd_cm_is_read() {
    let s = custom_labelled();
    s.f.argo_cd_settings(Some(&[
        ("application.instanceLabelKey", "mycompany.com/appname"),
        ("application.resourceTrackingMethod", "label"),
    ]));
    assert_managed_as_shop(&s, "mycompany.com/appname");
    assert_eq!(s.f.config_map_requests()[0], "/api/v1/namespaces/argocd/configmaps/argocd-cm");
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"]);
    out.ok();
    assert!(out.stderr.contains("argocd app set shop --sync-policy none"), "{}", out.stderr);
    assert!(!out.stderr.contains("nothing to freeze"), "{}", out.stderr);
}

#[test]
fn a_tracking_label_set_in_deploy_is_used_without_reading_argocd_cm() {
    let s = custom_labelled();
    // forge-rollback may not read Argo CD's settings; `[deploy]` names the label instead.
    s.f.argo_cd_settings_forbidden(true);
    s.add_to_deploy("argocd_instance_label = \"mycompany.com/appname\"");
    assert_managed_as_shop(&s, "mycompany.com/appname");
    assert_eq!(s.f.config_map_requests(), Vec::<String>::new());
}

#[test]
fn argo_cd_installed_in_another_namespace_is_read_there_when_deploy_names_it() {
    // As OpenShift GitOps installs it: settings and Applications in `openshift-gitops`, and
    // credentials that may list the Applications of that namespace only.
    let s = setup(&[0, 1, 2]);
    s.f.mark(true, "mycompany.com/appname", "shop");
    s.f.argo_cd_applications(&[("openshift-gitops", "shop")], false);
    s.f.argo_cd_namespace("openshift-gitops");
    s.f.argo_cd_settings(Some(&[("application.instanceLabelKey", "mycompany.com/appname")]));
    s.add_to_deploy("argocd_namespace = \"openshift-gitops\"");
    assert_managed_as_shop(&s, "mycompany.com/appname");
    assert_eq!(s.f.config_map_requests(), ["/api/v1/namespaces/openshift-gitops/configmaps/argocd-cm"]);
    let asked = s.f.argo_cd_requests();
    assert_eq!(
        asked.last().map(String::as_str),
        Some("/apis/argoproj.io/v1alpha1/namespaces/openshift-gitops/applications?limit=100"),
        "{asked:?}"
    );

    // A namespace that is no Kubernetes name is refused at load.
    let s = setup(&[0, 1, 2]);
    s.add_to_deploy("argocd_namespace = \"Open Shift\"");
    let out = s.fr(&["plan", "--fast", "--target", "v1"]);
    out.code(2);
    assert!(
        out.stderr.contains("deploy.argocd_namespace")
            && out.stderr.contains("`Open Shift` is not a Kubernetes object name"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_argo_cd_whose_tracking_label_cannot_be_learned_is_not_called_nothing_to_freeze() {
    // `argocd-cm` may not be read (`403`), or is not in namespace `argocd` (`404`: Argo CD
    // installed elsewhere), and Argo CD's API is served here: a custom label cannot be ruled out.
    for (forbidden, why) in [
        (true, "these credentials may not read the ConfigMap argocd-cm in namespace argocd (403)"),
        (false, "namespace argocd has no ConfigMap argocd-cm"),
    ] {
        let s = custom_labelled();
        s.f.argo_cd_settings_forbidden(forbidden);
        if !forbidden {
            s.f.argo_cd_settings(None);
        }
        let risks = auto_sync_risks(&s);
        assert_eq!(risks.len(), 1, "{why}: {risks:?}");
        for part in [
            "Argo CD is installed in this cluster, and the label it tracks what it deploys by cannot be learned",
            why,
            "application.instanceLabelKey",
            "kubectl get deployment api -n prod --show-labels",
            "argocd app set <application> --sync-policy none",
            "set `argocd_instance_label` in `[deploy]`",
        ] {
            assert!(risks[0].contains(part), "{part}: {risks:?}");
        }
        let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"]);
        out.ok();
        assert!(!out.stderr.contains("nothing to freeze"), "{}", out.stderr);
        assert!(out.stderr.contains("[WARN]") && out.stderr.contains("argocd_instance_label"), "{}", out.stderr);
    }

    // No Argo CD here (its API is not served) and `argocd-cm` may not be read, as for most
    // credentials limited to the workload's namespace: nothing to warn about.
    let s = setup(&[0, 1, 2]);
    s.f.mark(true, "mycompany.com/appname", "shop");
    s.f.argo_cd_settings_forbidden(true);
    assert_eq!(auto_sync_risks(&s), Vec::<String>::new());
    assert_eq!(s.f.argo_cd_requests()[0], "/apis/argoproj.io/v1alpha1", "Argo CD's API was looked for");
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"]);
    out.ok();
    assert!(out.stderr.contains("nothing to freeze"), "{}", out.stderr);
}
