//! A release that moves a submodule to another commit. `git reset --hard` moves the commit
//! the superproject records, not the submodule's files; before, `run` reported `succeeded`
//! with the submodule still on the broken release's commit, and `assess` listed it as one
//! more modified code file. Now `assess` names the risk and the reset step warns with the
//! command that checks the recorded commits out (rollback and undo, both backends).

use rollback_testkit::TestRepo;

use crate::shapes::{BACKENDS, config, fr, run_id};

const UPDATE: &str = "git submodule update --recursive -- vendor/lib";

/// An app whose HEAD moved its submodule `vendor/lib` from the library's v1 to v2.
fn app_with_bumped_submodule() -> (TestRepo, TestRepo) {
    let lib = TestRepo::new();
    lib.write("lib.txt", "v1\n");
    lib.commit_all("lib v1");
    let app = TestRepo::new();
    app.write("app.py", "one\n");
    let url = lib.path().to_str().unwrap();
    app.git(&["-c", "protocol.file.allow=always", "submodule", "add", "-q", url, "vendor/lib"]);
    app.commit_all("one");
    lib.write("lib.txt", "v2\n");
    lib.commit_all("lib v2");
    app.git(&["-C", "vendor/lib", "-c", "protocol.file.allow=always", "pull", "-q", "origin", "HEAD"]);
    app.write("app.py", "two\n");
    app.commit_all("two: lib v2");
    (app, lib)
}

fn warnings(out: &serde_json::Value) -> Vec<String> {
    out["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_rollback_that_moves_a_submodule_says_so_and_what_to_run() {
    for backend in BACKENDS {
        let (app, _lib) = app_with_bumped_submodule();
        let (_dir, cfg) = config(backend);

        let a = fr(&app, &cfg, &["assess", "--json", "--target", "HEAD~1"], &[]);
        let a = a.ok().json();
        let risk = a["risks"].as_array().unwrap().iter().find(|r| r["code"] == "submodule_changed");
        let risk = risk.unwrap_or_else(|| panic!("{backend}: no submodule risk in {a}"));
        assert!(risk["message"].as_str().unwrap().contains(UPDATE), "{backend}: {risk}");
        let changed: Vec<&serde_json::Value> =
            a["changes"].as_array().unwrap().iter().filter(|c| c["submodule"] == true).collect();
        assert_eq!(changed.len(), 1, "{backend}: {a}");
        assert_eq!(changed[0]["path"], "vendor/lib", "{backend}");

        let text = fr(&app, &cfg, &["assess", "--target", "HEAD~1"], &[]);
        assert!(text.ok().stdout.contains("vendor/lib (submodule)"), "{backend}: {}", text.stdout);

        let out = fr(&app, &cfg, &["run", "--fast", "--yes", "--json", "--target", "HEAD~1"], &[]);
        let run = out.ok().json();
        assert_eq!(run["status"], "succeeded", "{backend}");
        assert!(warnings(&run).iter().any(|w| w.contains(UPDATE)), "{backend}: {run}");
        // What git does: the record moved, the submodule's files did not.
        assert_eq!(app.read("vendor/lib/lib.txt"), b"v2\n", "{backend}");
        app.git(&["submodule", "update", "--recursive", "--", "vendor/lib"]);
        assert_eq!(app.read("vendor/lib/lib.txt"), b"v1\n", "{backend}: the hint's command finishes the rollback");

        let undone = fr(&app, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]);
        let undone = undone.ok().json();
        assert!(warnings(&undone).iter().any(|w| w.contains(UPDATE)), "{backend}: {undone}");
        app.git(&["submodule", "update", "--recursive", "--", "vendor/lib"]);
        assert_eq!(app.read("vendor/lib/lib.txt"), b"v2\n", "{backend}");
        // A report made later, once the run is undone, still has the warning.
        let report = fr(&app, &cfg, &["report", &run_id(&out)], &[]);
        assert!(report.ok().stdout.contains("**Undone By**"), "{backend}: {}", report.stdout);
        assert!(report.stdout.contains(&format!("- **Warning**: the reset moved the commit recorded for 1 submodule(s) (`vendor/lib`), not their files: run `{UPDATE}`")), "{backend}: {}", report.stdout);
        assert_eq!(app.git(&["status", "--porcelain"]), "", "{backend}");
    }
}

/// A rollback that does not move a submodule says nothing about submodules, though the
/// repository has one.
#[test]
fn a_rollback_that_leaves_the_submodule_alone_does_not_warn() {
    for backend in BACKENDS {
        let (app, _lib) = app_with_bumped_submodule();
        app.write("app.py", "three\n");
        app.commit_all("three");
        let (_dir, cfg) = config(backend);
        let a = fr(&app, &cfg, &["assess", "--json", "--target", "HEAD~1"], &[]);
        let a = a.ok().json();
        let changed: Vec<(&str, bool)> = a["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["path"].as_str().unwrap(), c["submodule"] == true))
            .collect();
        assert_eq!(changed, [("app.py", false)], "{backend}");
        assert!(!a["risks"].to_string().contains("submodule"), "{backend}: {a}");
        let out = fr(&app, &cfg, &["run", "--fast", "--yes", "--json", "--target", "HEAD~1"], &[]);
        let run = out.ok().json();
        assert!(!warnings(&run).iter().any(|w| w.contains("submodule")), "{backend}: {run}");
    }
}
