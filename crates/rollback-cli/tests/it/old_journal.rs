//! State folders written by an older forge-rollback (commit aae7e0d, where a step's result in
//! the journal was a free JSON map) still load, resume and undo with today's binary.
//!
//! Each folder under `tests/fixtures/old_journal/` is what one real run of that binary left
//! behind, kept as plain files:
//! - `worktree/`: the work tree after the run (a `.gitignore` is stored as `.gitignore.stored`
//!   so that it does not apply to this repository);
//! - `gitdir/`: its `.git` folder without hooks, reflogs and the state folder;
//! - `state/`: the state folder (`.git/forge-rollback`): journals, logs, reports, the lock file,
//!   the backup store's blobs and manifests;
//! - `meta.json`: how the run was made (command, failpoint, exit code), its run id(s), the
//!   folder it ran in, and the file modes and empty folders git cannot keep;
//! - `expect.json`: pictures (files with modes, HEAD, branch, `git status`, the database's
//!   revision and dump) of the state before the run and, where a test needs one, of the state
//!   that old binary reached from the fixture (after resuming it, or before undoing an undo).
//!
//! The tests lay a fixture out in a new temp dir, never the folder it was made in: journals,
//! manifests, logs and reports hold that old absolute path, and nothing may depend on it.
//!
//! Regenerate (only when the fixtures must change; the tests only read them):
//! `crates/rollback-cli/tests/fixtures/old_journal/make.sh [path/to/forge-rollback]`, which runs
//! the ignored test [`regenerate_old_journal_fixtures`] with `OLD_JOURNAL_BIN` set.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rollback_testkit::db::{MigrationFixture, MigratorKind, SQL_DIR};
use rollback_testkit::{TestRepo, clean_git_env};
use serde_json::{Value, json};

use crate::common::Out;

/// The fixtures' folder.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/old_journal")
}

/// Commits of the full-rollback scenarios (`MigrationFixture`, native SQL migrations), the
/// same every time the history is built (fixed names, dates and contents).
const FULL_V1: &str = "7ea0cb6b4bc6d893707d7147f1f71951da4ce1d0";
const FULL_V3: &str = "70b94eade65dda73397e68f17fbeff34af64efd1";
/// Commits of the fast-rollback scenario (`TestRepo::three_releases`).
const FAST_V1: &str = "d945f9317f7597f8dcd802cb7554d60fcb93e8a5";
const FAST_V3: &str = "08c59ef3df098785295b9d450a3f29591172f43d";

/// The configuration of the full-rollback scenarios: SQLite through the native migrator, and
/// a restart and two checks that need no service, so that every step kind that runs without
/// one is in the journal.
const FULL_CONFIG: &str = r#"[database]
kind = "sql"
url = "sqlite:///app.db"
migrations_dir = "db/migrations"

[[checks]]
name = "schema"
kind = "db-revision"

[[checks]]
name = "readme"
kind = "command"
argv = ["test", "-f", "README.md"]

[[restart]]
name = "app"
argv = ["true"]
ready = "schema"
"#;

/// The v3 `payments` rows (migration 3), as the canonical dump shows them.
const PAYMENT_ROWS: &[&str] = &["(1, 1250, 'first')", "(2, 990, 'it''s \"quoted\"\nand on two lines')", "(3, 5, NULL)"];

// ----- running the binary -------------------------------------------------------------------

/// Runs `bin -C dir args...` the way `common::run_in` does (clean git environment, no
/// inherited `FORGE_ROLLBACK*` variables, `NO_COLOR`), with `env` added.
fn run_bin(bin: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(bin);
    clean_git_env(&mut cmd);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FORGE_ROLLBACK") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1").arg("-C").arg(dir).args(args).envs(env.iter().copied()).stdin(Stdio::null());
    let o = cmd.output().unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Today's binary.
fn fr(dir: &Path, args: &[&str]) -> Out {
    crate::common::run_in(dir, args, &[])
}

fn git(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = clean_git_env(&mut Command::new("git")).current_dir(dir).args(args).output().expect("run git");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

#[track_caller]
fn git_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = git(dir, args);
    assert!(ok, "git {args:?} failed in {}", dir.display());
    out
}

// ----- pictures of a repository -------------------------------------------------------------

/// Python caches: cleared by a rollback and never restored.
fn is_cache(rel: &str) -> bool {
    rel.contains("__pycache__") || Path::new(rel).extension().is_some_and(|e| e == "pyc")
}

/// Caches, and the database file (compared through its revision and dump, not its bytes).
fn skipped_in_picture(rel: &str) -> bool {
    is_cache(rel) || rel.starts_with("app.db")
}

/// Everything a resume or undo must get right, as JSON: every file with its mode and text,
/// folders, HEAD, branch, `git status` (staged state included) and, for the full scenarios,
/// the database's revision and canonical dump.
fn picture(repo: &Path, database: bool) -> Value {
    let mut files = BTreeMap::new();
    walk(repo, repo, &mut |rel, path, meta| {
        if rel == ".git" || skipped_in_picture(rel) {
            return false;
        }
        // Without the group and other write bits: files git checks out get them from the
        // umask, which differs between the machine that made the fixture and this one.
        let mode = format!("{:o}", meta.permissions().mode() & 0o7777 & !0o022);
        let node = if meta.is_dir() {
            json!({ "dir": mode })
        } else {
            assert!(meta.is_file(), "{rel}: the scenarios have no symlinks");
            json!({ "mode": mode, "text": String::from_utf8_lossy(&std::fs::read(path).unwrap()) })
        };
        files.insert(rel.to_owned(), node);
        true
    });
    let status: Vec<String> = git_ok(repo, &["status", "--porcelain=v1", "--untracked-files=all", "--ignored"])
        .lines()
        .filter(|l| !skipped_in_picture(&l[3..]) || l.ends_with("app.db"))
        .map(str::to_owned)
        .collect();
    let (_, branch) = git(repo, &["symbolic-ref", "-q", "--short", "HEAD"]);
    let mut p = json!({
        "head": git_ok(repo, &["rev-parse", "HEAD"]),
        "branch": branch,
        "status": status,
        "files": files,
    });
    if database {
        let (revision, dump) = db_state(repo);
        p["db_revision"] = json!(revision);
        p["db_dump"] = json!(dump);
    }
    p
}

/// The database's revision and canonical dump (schema and every row).
fn db_state(repo: &Path) -> (Vec<String>, String) {
    let config = rollback_core::config::Config::parse(
        &format!("[database]\nkind = \"sql\"\nurl = \"sqlite:///app.db\"\nmigrations_dir = \"{SQL_DIR}\"\n"),
        None,
    )
    .unwrap();
    let db = rollback_core::db::open(config.database.as_ref().unwrap(), repo).unwrap();
    let revision = rollback_core::rt::block_on(db.current()).unwrap().into_iter().map(|r| r.0).collect();
    let dump = rollback_core::rt::block_on(db.database().canonical_dump()).unwrap();
    (revision, dump)
}

/// Calls `f(relative path, path, metadata)` for everything below `root`, parents first; a
/// folder for which it returns `false` is not entered.
fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(&str, &Path, &std::fs::Metadata) -> bool) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let rel = path.strip_prefix(root).unwrap();
        let rel = rel.to_str().unwrap_or_else(|| panic!("{}: the scenarios have UTF-8 names", rel.display()));
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if f(rel, &path, &meta) && meta.is_dir() {
            walk(root, &path, f);
        }
    }
}

// ----- fixtures on disk -----------------------------------------------------------------------

/// A `.gitignore` inside the fixture would apply to this repository; it is stored renamed.
const STORED_SUFFIX: &str = ".stored";

fn stored_name(name: &OsStr) -> OsString {
    if name == ".gitignore" {
        let mut n = name.to_os_string();
        n.push(STORED_SUFFIX);
        n
    } else {
        assert!(!name.as_bytes().ends_with(b".gitignore.stored"), "{}: a reserved name", Path::new(name).display());
        name.to_os_string()
    }
}

fn real_name(name: &OsStr) -> OsString {
    match name.as_bytes().strip_suffix(STORED_SUFFIX.as_bytes()) {
        Some(b".gitignore") => ".gitignore".into(),
        _ => name.to_os_string(),
    }
}

/// Copies the folder `from` to `to` (which must not exist), renaming each entry with `rename`
/// and leaving out the top-level entries named in `skip`.
fn copy_tree(from: &Path, to: &Path, skip: &[&str], rename: fn(&OsStr) -> OsString) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| OsStr::new(s) == name) {
            continue;
        }
        let (src, dest) = (entry.path(), to.join(rename(&name)));
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&src, &dest, &[], rename);
        } else {
            assert!(ft.is_file(), "{}: only files and folders are kept", src.display());
            std::fs::copy(&src, &dest).unwrap();
        }
    }
}

/// A fixture laid out in a temp dir: the repository at `<tmp>/checkout`.
struct Laid {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    meta: Value,
    expect: Value,
}

impl Laid {
    /// Lays out fixture `name`: work tree, `.git`, state folder, then the recorded modes and
    /// empty folders.
    fn new(name: &str) -> Self {
        let src = fixtures().join(name);
        let read = |f: &str| -> Value {
            let p = src.join(f);
            serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
        };
        let (meta, expect) = (read("meta.json"), read("expect.json"));
        let tmp = tempfile::Builder::new().prefix("fr-old-journal-").tempdir().unwrap();
        let repo = tmp.path().join("checkout");
        copy_tree(&src.join("worktree"), &repo, &[], real_name);
        copy_tree(&src.join("gitdir"), &repo.join(".git"), &[], OsStr::to_os_string);
        copy_tree(&src.join("state"), &repo.join(".git/forge-rollback"), &[], OsStr::to_os_string);
        let place = |rel: &str| {
            let (top, rest) = rel.split_once('/').unwrap_or((rel, ""));
            let base = match top {
                "worktree" => repo.clone(),
                "gitdir" => repo.join(".git"),
                "state" => repo.join(".git/forge-rollback"),
                other => panic!("{name}: unknown fixture part `{other}`"),
            };
            if rest.is_empty() { base } else { base.join(rest) }
        };
        for d in meta["empty_dirs"].as_array().unwrap() {
            std::fs::create_dir_all(place(d.as_str().unwrap())).unwrap();
        }
        // Git keeps no modes but the executable bit: every file and folder of the work tree
        // and the state folder gets the mode it had (`default_mode` unless recorded).
        let modes = meta["modes"].as_object().unwrap();
        for part in ["worktree", "state"] {
            let root = place(part);
            let mut paths = vec![(String::new(), root.clone())];
            walk(&root, &root, &mut |rel, path, _| {
                if part == "worktree" && rel == ".git" {
                    return false;
                }
                paths.push((rel.to_owned(), path.to_owned()));
                true
            });
            for (rel, path) in paths {
                let key = if rel.is_empty() { part.to_owned() } else { format!("{part}/{rel}") };
                let default = default_mode(part, path.is_dir());
                let mode = modes.get(&key).map_or(default, |m| u32::from_str_radix(m.as_str().unwrap(), 8).unwrap());
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        Self { _tmp: tmp, repo, meta, expect }
    }

    fn run_id(&self) -> String {
        self.meta["run_id"].as_str().unwrap().to_owned()
    }

    fn has_db(&self) -> bool {
        self.meta["database"].as_bool().unwrap()
    }

    fn picture(&self) -> Value {
        picture(&self.repo, self.has_db())
    }

    fn read(&self, rel: &str) -> String {
        String::from_utf8(std::fs::read(self.repo.join(rel)).unwrap()).unwrap()
    }

    fn head(&self) -> String {
        git_ok(&self.repo, &["rev-parse", "HEAD"])
    }

    /// The journal of run `id`, one JSON value per record.
    fn journal(&self, id: &str) -> Vec<Value> {
        let path = self.repo.join(".git/forge-rollback/runs").join(id).join("journal.jsonl");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `runs list --json`, as a map from run id to its entry.
    fn runs(&self) -> BTreeMap<String, Value> {
        let out = fr(&self.repo, &["runs", "list", "--json"]);
        out.ok();
        out.json().as_array().unwrap().iter().map(|r| (r["run_id"].as_str().unwrap().to_owned(), r.clone())).collect()
    }

    /// Checks what reading the old state must give: the run is listed with the backup its
    /// snapshot step journaled; its report loads, names that backup and, for a run whose
    /// journal has not changed since it finished, is exactly the report the old binary wrote
    /// (its "Result" column is made from the step results); the backup store verifies.
    #[track_caller]
    fn check_loads(&self, id: &str, status: &str) {
        let journal = self.journal(id);
        assert_eq!(journal[0]["record"], "started", "{id}: {journal:#?}");
        assert_eq!(journal[0]["run_id"], id);
        let snapshot = step_end(&journal, "snapshot")["snapshot"].as_str().unwrap().to_owned();
        let runs = self.runs();
        let run = runs.get(id).unwrap_or_else(|| panic!("{id} not listed: {runs:#?}"));
        assert_eq!(run["status"], status, "{run:#}");
        assert_eq!(run["backup_id"], snapshot.as_str(), "the backup comes from the snapshot step's result");
        let report = fr(&self.repo, &["report", id]);
        report.ok();
        assert!(report.stdout.contains(id) && report.stdout.contains(&snapshot), "{}", report.stdout);
        let json = fr(&self.repo, &["report", id, "--format", "json"]);
        json.ok();
        let dir = self.repo.join(".git/forge-rollback/runs").join(id);
        if journal.last().unwrap()["record"] == "finished" {
            let old: Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
            let now = json.json();
            // Every field the old report had, with the same value (warnings logged while the
            // run ran are not journaled: a report rebuilt later has none). If a change to the
            // report is meant, compare with the fixture's `report.json`/`report.md` by hand.
            for (key, value) in old.as_object().unwrap().iter().filter(|(k, _)| *k != "warnings") {
                assert_eq!(&now[key], value, "{id}: `{key}` of the report built from the old journal");
            }
            if old["warnings"].as_array().unwrap().is_empty() {
                let old_md = std::fs::read_to_string(dir.join("report.md")).unwrap();
                assert_eq!(report.stdout, old_md, "{id}: the Markdown report the old binary wrote");
            }
        }
        fr(&self.repo, &["backups", "verify"]).ok();
    }
}

/// The result journaled by the (only) `step_end` of `step`.
#[track_caller]
fn step_end<'a>(journal: &'a [Value], step: &str) -> &'a Value {
    let ends: Vec<&Value> = journal.iter().filter(|r| r["record"] == "step_end" && r["step"] == step).collect();
    assert_eq!(ends.len(), 1, "one step_end of `{step}`: {journal:#?}");
    &ends[0]["detail"]
}

/// The steps with a `step_end`, in journal order.
fn ended(journal: &[Value]) -> Vec<&str> {
    journal.iter().filter(|r| r["record"] == "step_end").map(|r| r["step"].as_str().unwrap()).collect()
}

/// The keys of a step result, sorted.
fn keys(detail: &Value) -> Vec<&str> {
    let mut k: Vec<&str> =
        detail.as_object().unwrap_or_else(|| panic!("not a map: {detail}")).keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

/// Step results as the old binary wrote them: the keys of each kind the fixtures hold. A
/// refactored reader must accept every one of them.
#[track_caller]
fn assert_old_keys(journal: &[Value]) {
    for r in journal.iter().filter(|r| r["record"] == "step_end") {
        let step = r["step"].as_str().unwrap();
        let expected: &[&str] = match step {
            "snapshot" => &["bytes", "entries", "new_blobs", "new_bytes", "snapshot", "verified_blobs"],
            "db_snapshot" => &["bytes", "format", "revisions", "snapshot"],
            "downgrade" => &["from", "to"],
            "reset" => &["changed", "cleared", "kept", "target"],
            "remove_untracked" | "clear_caches" => &["removed"],
            "restore_env" => &["files", "record", "stats"],
            "restore_files" => &["files", "kept_dirs", "removed", "removed_dirs", "skipped", "symlinks"],
            "restore_index" => &["objects_written", "restored"],
            "restore_database" => &["revisions", "snapshot"],
            "restart" => &["steps"],
            "verify" => &["checks", "duration_ms", "passed", "started_at"],
            "record" => &["branch", "head"],
            other => panic!("a step the fixtures do not have: {other}"),
        };
        assert_eq!(keys(&r["detail"]), expected, "`{step}` result: {}", r["detail"]);
    }
}

// ----- the scenarios --------------------------------------------------------------------------

/// A full rollback to v1 killed inside its reset (after the downgrade; the way cleared, HEAD
/// not moved): `resume` reaches what the old binary's resume reached; `undo` after it brings
/// back v3, its rows, `.env` and the uncommitted work.
#[test]
fn old_full_run_killed_in_its_reset_resumes_then_undoes() {
    let fx = Laid::new("full_killed_in_reset");
    let id = fx.run_id();
    let journal = fx.journal(&id);
    assert_eq!(ended(&journal), ["snapshot", "db_snapshot", "downgrade"]);
    assert_old_keys(&journal);
    assert_eq!(step_end(&journal, "downgrade")["from"], json!(["0003"]));
    assert_eq!(step_end(&journal, "downgrade")["to"], json!(["0001"]));
    let last = journal.last().unwrap();
    assert_eq!((&last["record"], &last["step"]), (&json!("step_begin"), &json!("reset")), "killed in the reset");
    // The old work-tree path is in the journal; this checkout is elsewhere.
    let old_workdir = journal[0]["plan"]["workdir"].as_str().unwrap();
    assert_eq!(old_workdir, fx.meta["generated_in"].as_str().unwrap());
    assert_ne!(Path::new(old_workdir), fx.repo);

    fx.check_loads(&id, "running");
    assert_eq!(fx.runs()[&id]["interrupted"], true);
    // The state the kill left: code and `.env` still v3, the database already at v1.
    assert_eq!(fx.head(), FULL_V3);
    assert_eq!(fx.read("app/main.py"), "# hotfix in progress\n");
    assert_eq!(db_state(&fx.repo).0, ["0001"]);

    // A new run is refused until this one is settled.
    let blocked = fr(&fx.repo, &["run", "--full", "--yes", "--target", "v1"]);
    blocked.code(4);
    assert!(blocked.stderr.contains(&id), "{}", blocked.stderr);
    assert!(blocked.stderr.contains("took over a stale lock"), "the killed run's lock file: {}", blocked.stderr);

    let out = fr(&fx.repo, &["resume", &id, "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded", "{j:#}");
    assert!(j["steps"].as_array().unwrap().iter().all(|s| s["status"] == "done"), "{j:#}");
    assert_eq!(fx.picture(), fx.expect["after_resume"], "resume reaches what the old binary's resume reached");
    assert_eq!(fx.head(), FULL_V1);
    assert_eq!(fx.read("app/main.py"), "def status():\n    return {\"status\": \"healthy\"}\n");
    assert_eq!(fx.read(".env"), "TOKEN=v1\n", "the env recorded with v1");
    assert!(!fx.repo.join("notes").exists(), "untracked files removed");
    let (revision, dump) = db_state(&fx.repo);
    assert_eq!(revision, ["0001"]);
    assert!(!dump.contains("payments"), "{dump}");
    let journal = fx.journal(&id);
    assert!(journal.iter().any(|r| r["record"] == "resumed"));
    // It went on from the reset: the snapshots and the downgrade journaled before the kill
    // are the ones it keeps (`step_end` wants exactly one of each).
    let begun: Vec<&str> =
        journal.iter().filter(|r| r["record"] == "step_begin").map(|r| r["step"].as_str().unwrap()).collect();
    assert_eq!(begun.iter().filter(|s| **s == "snapshot" || **s == "downgrade").count(), 2, "{begun:?}");
    step_end(&journal, "snapshot");
    step_end(&journal, "db_snapshot");
    step_end(&journal, "downgrade");
    assert_eq!(journal.last().unwrap()["status"], "succeeded");
    assert_eq!(fx.runs()[&id]["status"], "succeeded");

    let out = fr(&fx.repo, &["undo", &id, "--yes", "--json"]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stdout);
    assert_eq!(fx.picture(), fx.expect["before"], "undo restores the state from before the old run");
    assert_before_full(&fx);
}

/// What every full scenario had before its run: v3, its three payments, `.env` and the
/// uncommitted work.
#[track_caller]
fn assert_before_full(fx: &Laid) {
    assert_eq!(fx.head(), FULL_V3);
    assert_eq!(fx.read("app/main.py"), "# hotfix in progress\n");
    assert_eq!(fx.read(".env"), "TOKEN=v3\nNEW=1\n");
    assert_eq!(fx.read("notes/incident 2025-12-10.md"), "users report 500\n");
    let (revision, dump) = db_state(&fx.repo);
    assert_eq!(revision, ["0003"]);
    for row in PAYMENT_ROWS {
        assert!(dump.contains(row), "payments row {row} is back: {dump}");
    }
}

/// A full rollback to v1 that succeeded through every step kind that needs no service:
/// `undo` brings back the exact state from before it.
#[test]
fn old_full_run_that_succeeded_undoes() {
    let fx = Laid::new("full_succeeded");
    let id = fx.run_id();
    let journal = fx.journal(&id);
    assert_eq!(
        ended(&journal),
        [
            "snapshot",
            "db_snapshot",
            "downgrade",
            "reset",
            "remove_untracked",
            "restore_env",
            "clear_caches",
            "restart",
            "verify",
            "record"
        ]
    );
    assert_old_keys(&journal);
    assert_eq!(step_end(&journal, "verify")["passed"], true);
    assert_eq!(step_end(&journal, "record")["head"], FULL_V1);
    assert_eq!(step_end(&journal, "clear_caches")["removed"], 1);
    fx.check_loads(&id, "succeeded");
    let md = fr(&fx.repo, &["report", &id]);
    assert!(md.stdout.contains("database moved from 0003 to 0001"), "{}", md.stdout);
    assert_eq!(fx.picture(), fx.expect["after_run"], "laid out as the old run left it");
    assert_eq!(fx.head(), FULL_V1);
    assert_eq!(fx.read(".env"), "TOKEN=v1\n");
    assert_eq!(db_state(&fx.repo).0, ["0001"]);

    let out = fr(&fx.repo, &["undo", &id, "--yes", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded", "{j:#}");
    let steps: Vec<&str> = j["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(steps.contains(&"restore_database"), "the downgrade changed the database: {steps:?}");
    assert_eq!(fx.picture(), fx.expect["before"], "undo restores the state from before the old run");
    assert_before_full(&fx);
    assert!(fx.picture()["status"].as_array().unwrap().contains(&json!("A  app/new_staged.py")), "index restored");
    assert_eq!(fx.runs()[&id]["status"], "undone");
}

/// A fast rollback to v1 that failed at `remove_untracked` (after its reset): `undo` restores
/// the tree, HEAD and index from before it.
#[test]
fn old_fast_run_that_failed_undoes() {
    let fx = Laid::new("fast_failed");
    let id = fx.run_id();
    let journal = fx.journal(&id);
    assert_eq!(ended(&journal), ["snapshot", "reset"]);
    assert_old_keys(&journal);
    let failed: Vec<&Value> = journal.iter().filter(|r| r["record"] == "step_failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["step"], "remove_untracked");
    assert!(failed[0]["error"].as_str().unwrap().contains("injected failure"), "{}", failed[0]);
    fx.check_loads(&id, "failed");
    assert_eq!(fx.head(), FAST_V1);

    let out = fr(&fx.repo, &["undo", &id, "--yes", "--json"]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stdout);
    assert_eq!(fx.picture(), fx.expect["before"], "undo restores the state from before the old run");
    assert_eq!(fx.head(), FAST_V3);
    assert_eq!(fx.read("app/main.py"), "# hotfix in progress\n");
    assert_eq!(fx.read("app/new_staged.py"), "STAGED = 1\n");
    assert_eq!(fx.read("notes/incident/2025-12-10 draft.md"), "users report 500\n");
    assert_eq!(fx.read("notes/caf\u{e9}.txt"), "cr\u{e8}me\n");
    assert!(fx.picture()["status"].as_array().unwrap().contains(&json!("A  app/new_staged.py")), "index restored");
}

/// A full rollback whose second downgrade failed; the old binary put the database back and
/// said so in the failure's result (`database_changed: false`): `undo` restores the tree and
/// leaves the database alone.
#[test]
fn old_full_run_whose_downgrade_failed_undoes_without_touching_the_database() {
    let fx = Laid::new("full_downgrade_failed");
    let id = fx.run_id();
    let journal = fx.journal(&id);
    assert_eq!(ended(&journal), ["snapshot", "db_snapshot"]);
    assert_old_keys(&journal);
    let failed: Vec<&Value> = journal.iter().filter(|r| r["record"] == "step_failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["step"], "downgrade");
    assert_eq!(failed[0]["detail"], json!({ "database_changed": false }));
    fx.check_loads(&id, "failed");
    assert_eq!(db_state(&fx.repo).0, ["0003"], "the old binary restored the database");

    let out = fr(&fx.repo, &["undo", &id, "--yes", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded", "{j:#}");
    let steps: Vec<&str> = j["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(!steps.contains(&"restore_database"), "the failure said the database is unchanged: {steps:?}");
    assert_eq!(fx.picture(), fx.expect["before"], "undo restores the state from before the old run");
    assert_before_full(&fx);
}

/// A full rollback the old binary undid: the rollback is listed as undone and refuses a second
/// undo; undoing the old undo brings back the rolled-back state.
#[test]
fn old_undo_run_is_itself_undone() {
    let fx = Laid::new("full_undone");
    let id = fx.run_id();
    let undo_id = fx.meta["undo_run_id"].as_str().unwrap().to_owned();
    let journal = fx.journal(&id);
    assert_old_keys(&journal);
    assert_eq!(journal.last().unwrap()["record"], "undone");
    assert_eq!(journal.last().unwrap()["by"], undo_id.as_str());
    let undo_journal = fx.journal(&undo_id);
    assert_eq!(
        ended(&undo_journal),
        [
            "snapshot",
            "db_snapshot",
            "restore_database",
            "reset",
            "remove_untracked",
            "restore_files",
            "restore_index",
            "restart",
            "verify",
            "record"
        ]
    );
    assert_old_keys(&undo_journal);
    assert_eq!(undo_journal[0]["plan"]["undo_of"], id.as_str());
    fx.check_loads(&id, "undone");
    fx.check_loads(&undo_id, "succeeded");
    assert_before_full(&fx);

    let again = fr(&fx.repo, &["undo", &id, "--yes"]);
    again.code(4);
    assert!(again.stderr.contains(&undo_id), "{}", again.stderr);

    let out = fr(&fx.repo, &["undo", &undo_id, "--yes", "--json"]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stdout);
    assert_eq!(fx.picture(), fx.expect["after_run"], "the rolled-back state is back");
    assert_eq!(fx.head(), FULL_V1);
    assert_eq!(fx.read(".env"), "TOKEN=v1\n");
    assert_eq!(db_state(&fx.repo).0, ["0001"]);
}

// ----- making the fixtures --------------------------------------------------------------------

/// The sample app of the full scenarios at v3 with the native migrator on SQLite: v1 was
/// deployed and marked known-good (recording its `.env`), then v3 deployed with a new `.env`,
/// a hotfix in progress, a staged file and an untracked note.
fn full_repo(bin: &Path) -> (TestRepo, MigrationFixture) {
    let r = TestRepo::new();
    let fx = MigrationFixture::new(&r, MigratorKind::Sql);
    assert_eq!(
        [fx.commits[1].as_str(), fx.commits[3].as_str()],
        [FULL_V1, FULL_V3],
        "the history changed: {:?}",
        fx.commits
    );
    r.write("forge-rollback.toml", FULL_CONFIG);
    r.git(&["reset", "-q", "--hard", "v1"]);
    // 512-byte pages keep the database and its dumps at a few KB (the default makes 20 KB).
    let out = Command::new("sqlite3").arg(r.path().join("app.db")).arg("PRAGMA page_size = 512; VACUUM;").output();
    assert!(out.is_ok_and(|o| o.status.success()), "the generator needs the sqlite3 program");
    crate::common::migrate_sqlite(&r);
    r.write(".env", "TOKEN=v1\n");
    run_bin(bin, r.path(), &["known-good", "mark", "HEAD"], &[]).ok();
    r.git(&["reset", "-q", "--hard", "v3"]);
    crate::common::migrate_sqlite(&r);
    r.write(".env", "TOKEN=v3\nNEW=1\n")
        .write("app/main.py", "# hotfix in progress\n")
        .write("app/new_staged.py", "STAGED = 1\n")
        .write("notes/incident 2025-12-10.md", "users report 500\n");
    r.git(&["add", "app/new_staged.py"]);
    (r, fx)
}

/// The three-release sample app at v3 with messy uncommitted work (no database).
fn fast_repo() -> TestRepo {
    let r = TestRepo::new();
    let ids = r.three_releases();
    assert_eq!([ids[0].as_str(), ids[2].as_str()], [FAST_V1, FAST_V3], "the history changed: {ids:?}");
    r.write("app/main.py", "# hotfix in progress\n")
        .write("app/new_staged.py", "STAGED = 1\n")
        .write("notes/incident/2025-12-10 draft.md", "users report 500\n")
        .write("notes/caf\u{e9}.txt", "cr\u{e8}me\n")
        .write(".env", "SECRET=1\n");
    r.git(&["add", "app/new_staged.py"]);
    r
}

/// What each part of a fixture leaves out of the repository (top-level names).
fn left_out(part: &str) -> &'static [&'static str] {
    match part {
        "worktree" => &[".git"],
        "gitdir" => &["hooks", "logs", "forge-rollback"],
        _ => &[],
    }
}

fn repo_part(repo: &Path, part: &str) -> PathBuf {
    match part {
        "worktree" => repo.to_owned(),
        "gitdir" => repo.join(".git"),
        _ => repo.join(".git/forge-rollback"),
    }
}

/// The mode a file or folder of a fixture's part gets unless `meta.json` says otherwise: as
/// git checks out the work tree, private (as forge-rollback creates it) in the state folder.
fn default_mode(part: &str, dir: bool) -> u32 {
    match (part, dir) {
        ("state", true) => 0o700,
        ("state", false) => 0o600,
        (_, true) => 0o755,
        (_, false) => 0o644,
    }
}

/// Records the modes git cannot keep (in the work tree and the state folder, those that are
/// not [`default_mode`]) and the empty folders of one part of the repository.
fn record_layout(part: &str, dir: &Path, modes: &mut BTreeMap<String, String>, empty: &mut Vec<String>) {
    let skip = left_out(part);
    let mut visit = |rel: &str, path: &Path, meta: &std::fs::Metadata| {
        if skip.contains(&rel) {
            return false;
        }
        let key = if rel.is_empty() { part.to_owned() } else { format!("{part}/{rel}") };
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() && std::fs::read_dir(path).unwrap().next().is_none() {
            empty.push(key.clone());
        }
        if part != "gitdir" && mode != default_mode(part, meta.is_dir()) {
            modes.insert(key, format!("{mode:o}"));
        }
        true
    };
    visit("", dir, &std::fs::metadata(dir).unwrap());
    walk(dir, dir, &mut visit);
}

/// Stores the repository `repo` (work tree, `.git`, state folder) as fixture `name`, with
/// `meta` completed by the layout, and `expect`; then checks that it lays out as it is.
fn store(name: &str, repo: &Path, mut meta: Value, expect: &Value) {
    let dest = fixtures().join(name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).unwrap();
    }
    let (mut modes, mut empty) = (BTreeMap::new(), Vec::new());
    for part in ["worktree", "gitdir", "state"] {
        let rename: fn(&OsStr) -> OsString = if part == "worktree" { stored_name } else { OsStr::to_os_string };
        copy_tree(&repo_part(repo, part), &dest.join(part), left_out(part), rename);
        record_layout(part, &repo_part(repo, part), &mut modes, &mut empty);
    }
    // This repository's `.gitignore` ignores caches: a scenario must not leave one.
    walk(&dest, &dest, &mut |rel, _, _| {
        assert!(!is_cache(rel), "{name}: {rel}");
        true
    });
    meta["modes"] = json!(modes);
    meta["empty_dirs"] = json!(empty);
    let write = |file: &str, v: &Value| {
        let mut text = serde_json::to_string_pretty(v).unwrap();
        text.push('\n');
        std::fs::write(dest.join(file), text).unwrap();
    };
    write("meta.json", &meta);
    write("expect.json", expect);
    let database = meta["database"].as_bool().unwrap();
    assert_eq!(Laid::new(name).picture(), picture(repo, database), "{name}: lays out as it was left");
}

/// Runs the scenario's rollback with `bin` and returns its run id, checking how it ended.
fn old_run(bin: &Path, repo: &Path, args: &[&str], env: &[(&str, &str)], code: Option<i32>) -> String {
    let out = run_bin(bin, repo, args, env);
    assert_eq!(out.code, code, "{args:?} {env:?}\n{}\n{}", out.stdout, out.stderr);
    let list = run_bin(bin, repo, &["runs", "list", "--json"], &[]).json();
    let runs = list.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{list:#}");
    runs[0]["run_id"].as_str().unwrap().to_owned()
}

/// Regenerates every fixture with the binary `OLD_JOURNAL_BIN` (default: this crate's). Run
/// through `tests/fixtures/old_journal/make.sh`.
#[test]
#[ignore = "writes the fixtures; run through tests/fixtures/old_journal/make.sh"]
fn regenerate_old_journal_fixtures() {
    let bin = std::env::var_os("OLD_JOURNAL_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_forge-rollback")), PathBuf::from);
    let version = run_bin(&bin, Path::new("."), &["--version"], &[]).stdout.trim().to_owned();
    // Which source the binary was built from: said by the caller for another binary; for this
    // crate's, this checkout's commit, and whether anything but the tests differs from it.
    let source = std::env::var("OLD_JOURNAL_SOURCE").unwrap_or_else(|_| {
        if std::env::var_os("OLD_JOURNAL_BIN").is_some() {
            return "unknown (set OLD_JOURNAL_SOURCE)".to_owned();
        }
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let commit = git_ok(here, &["rev-parse", "HEAD"]);
        let (clean, _) =
            git(here, &["diff", "--quiet", "HEAD", "--", ":(top)", ":(top,exclude)crates/rollback-cli/tests"]);
        if clean { commit } else { format!("{commit} with uncommitted changes") }
    });
    let provenance = |repo: &Path, command: &[&str], env: &[(&str, &str)], code: Option<i32>| {
        json!({
            "generated_by": version,
            "source": source,
            "generated_in": repo.display().to_string(),
            "command": command,
            "env": env.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "exit_code": code,
            "database": command.contains(&"--full"),
        })
    };
    let full_run = ["run", "--full", "--yes", "--json", "--target", "v1"];

    // (a) Killed inside the reset; the expected resume is the old binary's own, on a copy.
    {
        let (r, _) = full_repo(&bin);
        let before = picture(r.path(), true);
        let env = [("FORGE_ROLLBACK_FAILPOINT", "inside:reset")];
        let id = old_run(&bin, r.path(), &full_run, &env, None);
        let mut meta = provenance(r.path(), &full_run, &env, None);
        meta["run_id"] = json!(id);
        store("full_killed_in_reset", r.path(), meta.clone(), &json!({ "before": before }));
        let copy = Laid::new("full_killed_in_reset");
        run_bin(&bin, &copy.repo, &["resume", &id], &[]).ok();
        let after_resume = copy.picture();
        run_bin(&bin, &copy.repo, &["undo", &id, "--yes"], &[]).ok();
        assert_eq!(copy.picture(), before, "the old binary's undo after its resume");
        store("full_killed_in_reset", r.path(), meta, &json!({ "before": before, "after_resume": after_resume }));
    }
    // (b) Succeeded; (e) the same, then undone by the old binary.
    for name in ["full_succeeded", "full_undone"] {
        let (r, _) = full_repo(&bin);
        r.write("app/__pycache__/main.cpython-311.pyc", "cache");
        let before = picture(r.path(), true);
        let id = old_run(&bin, r.path(), &full_run, &[], Some(0));
        let after_run = picture(r.path(), true);
        let mut meta = provenance(r.path(), &full_run, &[], Some(0));
        meta["run_id"] = json!(id);
        if name == "full_undone" {
            let out = run_bin(&bin, r.path(), &["undo", &id, "--yes", "--json"], &[]);
            out.ok();
            assert_eq!(picture(r.path(), true), before, "the old binary's undo");
            meta["undo_run_id"] = out.json()["run_id"].clone();
        }
        store(name, r.path(), meta, &json!({ "before": before, "after_run": after_run }));
    }
    // (c) Fast, failed at `remove_untracked` (after its reset).
    {
        let r = fast_repo();
        let before = picture(r.path(), false);
        let args = ["run", "--fast", "--yes", "--json", "--target", "v1"];
        let env =
            [("FORGE_ROLLBACK_FAILPOINT", "before:remove_untracked"), ("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")];
        let id = old_run(&bin, r.path(), &args, &env, Some(1));
        let mut meta = provenance(r.path(), &args, &env, Some(1));
        meta["run_id"] = json!(id);
        store("fast_failed", r.path(), meta, &json!({ "before": before }));
    }
    // (d) Full, its second downgrade fails (the old binary puts the database back).
    {
        let (r, fx) = full_repo(&bin);
        fx.break_second_downgrade(&r);
        let before = picture(r.path(), true);
        let id = old_run(&bin, r.path(), &full_run, &[], Some(1));
        let mut meta = provenance(r.path(), &full_run, &[], Some(1));
        meta["run_id"] = json!(id);
        store("full_downgrade_failed", r.path(), meta, &json!({ "before": before }));
    }
}
