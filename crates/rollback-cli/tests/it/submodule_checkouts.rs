//! A submodule's own checkout across a rollback and its undo: the submodule is another
//! repository (its history, branch, index and local work), which no backup holds, so the
//! rollback must leave it exactly as it is, as `git reset --hard` does.
//!
//! - The broken release added the submodule (the target does not have it). The `git2`
//!   back-end deleted its folder, `.git` included: a `.git` folder in it (a clone made before
//!   `git submodule add`) took the submodule's unpushed commits with it for good, and the undo
//!   said it succeeded without the `.git`. The `git-cli` back-end left the folder (git's
//!   behaviour), but then refused every undo: it took the submodule's checkout for a nested
//!   repository where the state being restored has a file. Now both leave the folder, and the
//!   undo writes the gitlink back over it, the checkout untouched.
//! - `submodule.recurse = true` in the repository's configuration: `git reset --hard` checked
//!   the submodule out at the target's commit (its branch left, its staged change and its edit
//!   lost), where the tool says the reset moves only the recorded commit.

use rollback_testkit::TestRepo;

use crate::common::{Picture, picture};
use crate::shapes::{BACKENDS, config, fr, run_id};

const SUB: &str = "vendor/lib";

/// How the submodule's git folder is kept.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `vendor/lib/.git` is a `gitdir:` file, the repository under `.git/modules/` (what
    /// `git submodule add URL PATH` makes today).
    Absorbed,
    /// `vendor/lib/.git` is the repository itself (`git submodule add` of a folder that is
    /// already a clone, and every submodule cloned by git before 1.7.8).
    Embedded,
}

/// The library the app takes as a submodule (its origin, kept alive by the caller).
fn library() -> TestRepo {
    let lib = TestRepo::new();
    lib.write("lib.txt", "lib v1\n").write("src/core.txt", "core\n");
    lib.commit_all("lib v1");
    lib
}

/// Adds `lib` as the submodule at [`SUB`], in `shape`.
fn add_submodule(app: &TestRepo, lib: &TestRepo, shape: Shape) {
    let url = lib.path().to_str().unwrap();
    if let Shape::Embedded = shape {
        app.git(&["clone", "-q", url, SUB]);
    }
    app.git(&["-c", "protocol.file.allow=always", "submodule", "add", "-q", url, SUB]);
}

/// Work in the submodule that only its own repository holds: a commit not pushed, a staged
/// change, an edit, an untracked file and an empty folder.
fn local_work_in_submodule(app: &TestRepo) {
    let git = |args: &[&str]| app.git(&[&["-C", SUB], args].concat());
    app.write(format!("{SUB}/unpushed.txt"), "unpushed work\n");
    git(&["add", "unpushed.txt"]);
    git(&["commit", "-qm", "unpushed work"]);
    app.write(format!("{SUB}/lib.txt"), "staged\n");
    git(&["add", "lib.txt"]);
    app.write(format!("{SUB}/lib.txt"), "edited after staging\n");
    app.write(format!("{SUB}/notes.txt"), "untracked\n");
    std::fs::create_dir(app.path().join(SUB).join("cache")).unwrap();
}

/// What the submodule's repository holds, read without writing anything (no index refresh):
/// HEAD, its branch, every commit, the index, the status, and what `.git` is.
fn submodule_state(app: &TestRepo) -> Vec<String> {
    let dot_git = app.path().join(SUB).join(".git");
    let kind = match std::fs::symlink_metadata(&dot_git) {
        Ok(m) if m.is_dir() => "a folder".to_owned(),
        Ok(_) => format!("a file: {}", String::from_utf8_lossy(&std::fs::read(&dot_git).unwrap())),
        Err(e) => format!("missing: {e}"),
    };
    let mut out = vec![kind];
    for args in [
        &["rev-parse", "HEAD"][..],
        &["symbolic-ref", "-q", "HEAD"],
        &["log", "--all", "--format=%H %s"],
        &["ls-files", "-s"],
        &["status", "--porcelain", "--untracked-files=all"],
    ] {
        let out_of = app.git_output(&[&["--no-optional-locks", "-C", SUB], args].concat());
        out.push(String::from_utf8_lossy(&out_of.stdout).into_owned());
    }
    out
}

/// The app's picture without the inside of the submodule's git folder (git keeps its own
/// bookkeeping there; [`submodule_state`] reads what it holds).
fn app_picture(app: &TestRepo) -> Picture {
    let mut p = picture(app);
    let git_dir = format!("{SUB}/.git/");
    p.tree = p.tree.without(|path| path.starts_with(git_dir.as_bytes()));
    p
}

/// The broken release added the submodule; the rollback goes to the release before it. The
/// submodule's checkout stays where it is with everything in it, and the undo gives the exact
/// state back: with local work in the submodule, and with a clean checkout (which no snapshot
/// of the rollback holds, so that only the undo's own care keeps its files).
#[test]
fn a_rollback_past_an_added_submodule_leaves_its_checkout_and_undoes_exactly() {
    for backend in BACKENDS {
        for (shape, work) in [(Shape::Absorbed, true), (Shape::Embedded, true), (Shape::Absorbed, false)] {
            let what = format!("{backend} {shape:?} local work: {work}");
            let lib = library();
            let app = TestRepo::new();
            app.write("app.py", "v1\n");
            app.commit_all("v1");
            app.git(&["tag", "v1"]);
            add_submodule(&app, &lib, shape);
            app.write("app.py", "v2\n");
            app.commit_all("v2: the library as a submodule");
            if work {
                local_work_in_submodule(&app);
            }
            let (_dir, cfg) = config(backend);
            let (before, sub_before) = (app_picture(&app), submodule_state(&app));

            let out = fr(&app, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
            out.ok();
            assert_eq!(app.read("app.py"), b"v1\n", "{what}: the rollback happened");
            assert_eq!(app.git(&["ls-files", SUB]), "", "{what}: the gitlink left the index");
            assert_eq!(submodule_state(&app), sub_before, "{what}: the rollback left the submodule as it was");
            assert_eq!(app.path().join(SUB).join("cache").is_dir(), work, "{what}: its empty folder");

            let undo = fr(&app, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]);
            undo.ok();
            assert_eq!(app_picture(&app), before, "{what}: tree, HEAD, branch and index");
            assert_eq!(submodule_state(&app), sub_before, "{what}: the submodule after the undo");
            assert_eq!(app.path().join(SUB).join("cache").is_dir(), work, "{what}: its empty folder");
        }
    }
}

/// `submodule.recurse = true`: the reset still moves only the commit recorded for the
/// submodule; the submodule keeps its branch, its staged change and its edit.
#[test]
fn submodule_recurse_does_not_make_the_reset_check_submodules_out() {
    for backend in BACKENDS {
        let lib = library();
        let app = TestRepo::new();
        app.write("app.py", "v1\n");
        add_submodule(&app, &lib, Shape::Absorbed);
        app.commit_all("v1");
        app.git(&["tag", "v1"]);
        lib.write("lib.txt", "lib v2\n");
        lib.commit_all("lib v2");
        app.git(&["-C", SUB, "-c", "protocol.file.allow=always", "pull", "-q", "origin", "main"]);
        app.write("app.py", "v2\n");
        app.commit_all("v2: lib v2");
        app.git(&["-C", SUB, "checkout", "-q", "-b", "work"]);
        app.write(format!("{SUB}/lib.txt"), "staged\n");
        app.git(&["-C", SUB, "add", "lib.txt"]);
        app.write(format!("{SUB}/lib.txt"), "edited after staging\n");
        app.git(&["config", "submodule.recurse", "true"]);
        let (_dir, cfg) = config(backend);
        let (before, sub_before) = (app_picture(&app), submodule_state(&app));

        let out = fr(&app, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        out.ok();
        assert_eq!(app.read("app.py"), b"v1\n", "{backend}: the rollback happened");
        assert_eq!(submodule_state(&app), sub_before, "{backend}: the rollback left the submodule as it was");

        fr(&app, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]).ok();
        assert_eq!(app_picture(&app), before, "{backend}: tree, HEAD, branch and index");
        assert_eq!(submodule_state(&app), sub_before, "{backend}: the submodule after the undo");
    }
}
