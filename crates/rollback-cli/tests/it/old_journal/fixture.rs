//! Laying a fixture out, running the binary on it, and pictures of a repository to compare.

use super::make::default_mode;
#[allow(clippy::wildcard_imports)]
use super::*;

// ----- running the binary -------------------------------------------------------------------

/// Runs `bin -C dir args...` the way `common::run_in` does (clean git environment, no
/// inherited `FORGE_ROLLBACK*` variables, `NO_COLOR`), with `env` added.
pub(super) fn run_bin(bin: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
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
pub(super) fn fr(dir: &Path, args: &[&str]) -> Out {
    crate::common::run_in(dir, args, &[])
}

pub(super) fn git(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = clean_git_env(&mut Command::new("git")).current_dir(dir).args(args).output().expect("run git");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

#[track_caller]
pub(super) fn git_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = git(dir, args);
    assert!(ok, "git {args:?} failed in {}", dir.display());
    out
}

// ----- pictures of a repository -------------------------------------------------------------

/// Python caches: cleared by a rollback and never restored.
pub(super) fn is_cache(rel: &str) -> bool {
    rel.contains("__pycache__") || Path::new(rel).extension().is_some_and(|e| e == "pyc")
}

/// Caches, and the database file (compared through its revision and dump, not its bytes).
pub(super) fn skipped_in_picture(rel: &str) -> bool {
    is_cache(rel) || rel.starts_with("app.db")
}

/// Everything a resume or undo must get right, as JSON: every file with its mode and text,
/// folders, HEAD, branch, `git status` (staged state included) and, for the full scenarios,
/// the database's revision and canonical dump.
pub(super) fn picture(repo: &Path, database: bool) -> Value {
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
pub(super) fn db_state(repo: &Path) -> (Vec<String>, String) {
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
pub(super) fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(&str, &Path, &std::fs::Metadata) -> bool) {
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
pub(super) const STORED_SUFFIX: &str = ".stored";

pub(super) fn stored_name(name: &OsStr) -> OsString {
    if name == ".gitignore" {
        let mut n = name.to_os_string();
        n.push(STORED_SUFFIX);
        n
    } else {
        assert!(!name.as_bytes().ends_with(b".gitignore.stored"), "{}: a reserved name", Path::new(name).display());
        name.to_os_string()
    }
}

pub(super) fn real_name(name: &OsStr) -> OsString {
    match name.as_bytes().strip_suffix(STORED_SUFFIX.as_bytes()) {
        Some(b".gitignore") => ".gitignore".into(),
        _ => name.to_os_string(),
    }
}

/// Copies the folder `from` to `to` (which must not exist), renaming each entry with `rename`
/// and leaving out the top-level entries named in `skip`.
pub(super) fn copy_tree(from: &Path, to: &Path, skip: &[&str], rename: fn(&OsStr) -> OsString) {
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
pub(super) struct Laid {
    _tmp: tempfile::TempDir,
    pub(super) repo: PathBuf,
    pub(super) meta: Value,
    pub(super) expect: Value,
}

impl Laid {
    /// Lays out fixture `name`: work tree, `.git`, state folder, then the recorded modes and
    /// empty folders.
    pub(super) fn new(name: &str) -> Self {
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

    pub(super) fn run_id(&self) -> String {
        self.meta["run_id"].as_str().unwrap().to_owned()
    }

    pub(super) fn has_db(&self) -> bool {
        self.meta["database"].as_bool().unwrap()
    }

    pub(super) fn picture(&self) -> Value {
        picture(&self.repo, self.has_db())
    }

    pub(super) fn read(&self, rel: &str) -> String {
        String::from_utf8(std::fs::read(self.repo.join(rel)).unwrap()).unwrap()
    }

    pub(super) fn head(&self) -> String {
        git_ok(&self.repo, &["rev-parse", "HEAD"])
    }

    /// The journal of run `id`, one JSON value per record.
    pub(super) fn journal(&self, id: &str) -> Vec<Value> {
        let path = self.repo.join(".git/forge-rollback/runs").join(id).join("journal.jsonl");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `runs list --json`, as a map from run id to its entry.
    pub(super) fn runs(&self) -> BTreeMap<String, Value> {
        let out = fr(&self.repo, &["runs", "list", "--json"]);
        out.ok();
        out.json().as_array().unwrap().iter().map(|r| (r["run_id"].as_str().unwrap().to_owned(), r.clone())).collect()
    }

    /// Checks what reading the old state must give: the run is listed with the backup its
    /// snapshot step journaled; its report loads, names that backup and, for a run whose
    /// journal has not changed since it finished, is exactly the report the old binary wrote
    /// (its "Result" column is made from the step results); the backup store verifies.
    #[track_caller]
    pub(super) fn check_loads(&self, id: &str, status: &str) {
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
pub(super) fn step_end<'a>(journal: &'a [Value], step: &str) -> &'a Value {
    let ends: Vec<&Value> = journal.iter().filter(|r| r["record"] == "step_end" && r["step"] == step).collect();
    assert_eq!(ends.len(), 1, "one step_end of `{step}`: {journal:#?}");
    &ends[0]["detail"]
}

/// The steps with a `step_end`, in journal order.
pub(super) fn ended(journal: &[Value]) -> Vec<&str> {
    journal.iter().filter(|r| r["record"] == "step_end").map(|r| r["step"].as_str().unwrap()).collect()
}

/// The keys of a step result, sorted.
pub(super) fn keys(detail: &Value) -> Vec<&str> {
    let mut k: Vec<&str> =
        detail.as_object().unwrap_or_else(|| panic!("not a map: {detail}")).keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

/// Step results as the old binary wrote them: the keys of each kind the fixtures hold. A
/// refactored reader must accept every one of them.
#[track_caller]
pub(super) fn assert_old_keys(journal: &[Value]) {
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
