//! Repository shapes that `git status` alone does not show (issue 13, case 3): a work tree
//! whose `.git` file points to a git folder elsewhere (`git init --separate-git-dir`), inside
//! another repository's work tree. Every case runs with both backends.

use rollback_testkit::{TestRepo, TreeState};

use crate::common::{Out, picture, run_in};

const BACKENDS: [&str; 2] = ["git2", "git-cli"];

/// A configuration choosing `backend`, in its own temp dir (outside every work tree).
fn config(backend: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forge-rollback.toml");
    std::fs::write(&path, format!("[vcs]\nbackend = \"{backend}\"\n")).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

fn fr(r: &TestRepo, cfg: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut all = vec!["--config", cfg];
    all.extend_from_slice(args);
    run_in(r.path(), &all, env)
}

fn run_id(out: &Out) -> String {
    out.json()["run_id"].as_str().unwrap().to_owned()
}

/// `outer` is a repository with a committed file, a dirty edit and an untracked file; `app`
/// (a sibling folder) has its git folder at `outer/store`, made by `git init
/// --separate-git-dir`, the three releases and a dirty edit.
struct Layout {
    outer: TestRepo,
    app: TestRepo,
}

impl Layout {
    fn new() -> Self {
        let outer = TestRepo::new();
        outer.write("o.txt", "outer\n");
        outer.commit_all("outer");
        outer.write("o.txt", "outer, dirty\n").write("notes.txt", "untracked in outer\n");
        let app = TestRepo::new();
        // `git init --separate-git-dir=STORE` in place of the `.git` folder `TestRepo` made:
        // a `.git` file pointing at STORE.
        std::fs::remove_dir_all(app.path().join(".git")).unwrap();
        let store = outer.path().join("store");
        app.git(&["init", "-q", "-b", "main", &format!("--separate-git-dir={}", store.display())]);
        let gitfile = std::fs::read_to_string(app.path().join(".git")).unwrap();
        assert_eq!(gitfile.trim(), format!("gitdir: {}", store.display()));
        app.three_releases();
        app.write("app/main.py", "# hotfix in progress\n").write("scratch.txt", "untracked in app\n");
        Self { outer, app }
    }

    /// The outer repository: its tree (without the app's git folder, where the state folder
    /// lives), HEAD, index and status.
    fn outer_state(&self) -> (TreeState, String, String, String) {
        let o = &self.outer;
        let tree = o.tree().without(|p| p.starts_with(b"store"));
        let status = o.git(&["status", "--porcelain", "--untracked-files=all"]);
        let status: Vec<&str> = status.lines().filter(|l| !l.starts_with("?? store/")).collect();
        (tree, o.head(), o.git(&["ls-files", "-s"]), status.join("\n"))
    }
}

/// `git init --separate-git-dir` with the git folder inside another repository's work tree:
/// the app's repository is rolled back and undone; the outer repository, its dirty edit and
/// its untracked file stay exactly as they were.
#[test]
fn separate_git_dir_rolls_back_the_app_not_the_repository_around_its_git_folder() {
    for backend in BACKENDS {
        let l = Layout::new();
        let (_cfg_dir, cfg) = config(backend);
        let outer_before = l.outer_state();
        let app_before = picture(&l.app);
        let out = fr(&l.app, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        out.ok();
        assert_eq!(out.json()["status"], "succeeded", "{backend}");
        assert_eq!(l.app.head(), l.app.git(&["rev-parse", "v1"]), "{backend}: the app moved");
        assert_eq!(l.app.read("app/main.py"), b"def status():\n    return {\"status\": \"healthy\"}\n", "{backend}");
        assert!(!l.app.exists("scratch.txt") && !l.app.exists("app/users.py"), "{backend}");
        assert_eq!(l.outer_state(), outer_before, "{backend}: the outer repository is untouched");
        assert_eq!(l.outer.read("o.txt"), b"outer, dirty\n", "{backend}");
        fr(&l.app, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
        assert_eq!(picture(&l.app), app_before, "{backend}: undo restores the app");
        assert_eq!(l.outer_state(), outer_before, "{backend}: the outer repository is untouched");
    }
}
