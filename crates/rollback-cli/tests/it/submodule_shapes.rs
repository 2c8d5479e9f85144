//! A submodule where the target has plain tracked files: HEAD has the submodule `vendor/lib`,
//! the target (older) had `vendor/lib/` as a tracked folder, or `vendor/lib` as a file. Git
//! writes the target's files into the submodule's checkout (its uncommitted edit overwritten),
//! and the undo is then refused (it would delete a folder holding a `.git`): the rollback could
//! not be undone. It is refused before anything changes, on both back-ends, with the exit code
//! of the other nested-repository refusal.

use rollback_testkit::TestRepo;

use crate::common::picture;
use crate::shapes::{BACKENDS, config, fr};

const EDIT: &str = "lib v1\nUNCOMMITTED WORK IN SUBMODULE\n";

/// An app whose oldest commit tracks `vendor/lib` as `shape` puts it (a folder or a file), the
/// next drops it, the last adds the library as a submodule there; the submodule has an
/// uncommitted edit. Returns the app and the library (the submodule's origin, kept alive).
fn app(shape: impl Fn(&TestRepo)) -> (TestRepo, TestRepo) {
    let lib = TestRepo::new();
    lib.write("lib", "lib v1\n");
    lib.commit_all("l1");
    let app = TestRepo::new();
    app.write("app.py", "v1\n");
    shape(&app);
    app.commit_all("c1: vendored copy");
    app.git(&["rm", "-rq", "vendor"]);
    app.commit_all("drop vendored copy");
    let url = lib.path().to_str().unwrap();
    app.git(&["-c", "protocol.file.allow=always", "submodule", "add", "-q", url, "vendor/lib"]);
    app.commit_all("lib as submodule");
    app.write("vendor/lib/lib", EDIT);
    (app, lib)
}

fn refused_with_nothing_changed(app: &TestRepo, backend: &str, what: &str) {
    let (_dir, cfg) = config(backend);
    let before = (picture(app), app.git(&["ls-files", "-s"]), app.git(&["-C", "vendor/lib", "status", "--porcelain"]));
    let dry = fr(app, &cfg, &["run", "--fast", "--dry-run", "--json", "--target", "HEAD~2"], &[]);
    let warnings = dry.ok().json()["warnings"].to_string();
    assert!(
        warnings.contains("a run would refuse: `vendor/lib`: a nested git repository"),
        "{backend} {what}: the dry run says a run would refuse: {warnings}"
    );
    let out = fr(app, &cfg, &["run", "--fast", "--yes", "--json", "--target", "HEAD~2"], &[]);
    out.code(4);
    assert!(
        out.stderr.contains("`vendor/lib`: a nested git repository (a submodule's checkout"),
        "{backend} {what}: {}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was changed"), "{backend} {what}: {}", out.stderr);
    let after = (picture(app), app.git(&["ls-files", "-s"]), app.git(&["-C", "vendor/lib", "status", "--porcelain"]));
    assert_eq!(after, before, "{backend} {what}: something changed");
    assert_eq!(app.read("vendor/lib/lib"), EDIT.as_bytes(), "{backend} {what}: the submodule's edit");
    let runs = fr(app, &cfg, &["--json", "runs", "list"], &[]);
    assert_eq!(runs.ok().json(), serde_json::json!([]), "{backend} {what}: no run was started");
}

/// The repro: the target tracks `vendor/lib/lib`, a file of the submodule's checkout.
#[test]
fn a_rollback_that_writes_a_tracked_folder_over_a_submodule_is_refused() {
    for backend in BACKENDS {
        let (app, _lib) = app(|app| {
            app.write("vendor/lib/lib", "vendored copy\n");
        });
        refused_with_nothing_changed(&app, backend, "folder");
    }
}

/// The target tracks `vendor/lib` itself as a file.
#[test]
fn a_rollback_that_writes_a_file_over_a_submodule_is_refused() {
    for backend in BACKENDS {
        let (app, _lib) = app(|app| {
            app.write("vendor/lib", "vendored single file\n");
        });
        refused_with_nothing_changed(&app, backend, "file");
    }
}
