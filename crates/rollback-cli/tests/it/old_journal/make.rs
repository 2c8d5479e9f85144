//! Making the fixtures with an old binary (`make.sh`; an ignored test).

#[allow(clippy::wildcard_imports)]
use super::*;

// ----- making the fixtures --------------------------------------------------------------------

/// The sample app of the full scenarios at v3 with the native migrator on SQLite: v1 was
/// deployed and marked known-good (recording its `.env`), then v3 deployed with a new `.env`,
/// a hotfix in progress, a staged file and an untracked note.
pub(super) fn full_repo(bin: &Path) -> (TestRepo, MigrationFixture) {
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
pub(super) fn fast_repo() -> TestRepo {
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
pub(super) fn left_out(part: &str) -> &'static [&'static str] {
    match part {
        "worktree" => &[".git"],
        "gitdir" => &["hooks", "logs", "forge-rollback"],
        _ => &[],
    }
}

pub(super) fn repo_part(repo: &Path, part: &str) -> PathBuf {
    match part {
        "worktree" => repo.to_owned(),
        "gitdir" => repo.join(".git"),
        _ => repo.join(".git/forge-rollback"),
    }
}

/// The mode a file or folder of a fixture's part gets unless `meta.json` says otherwise: as
/// git checks out the work tree, private (as forge-rollback creates it) in the state folder.
pub(super) fn default_mode(part: &str, dir: bool) -> u32 {
    match (part, dir) {
        ("state", true) => 0o700,
        ("state", false) => 0o600,
        (_, true) => 0o755,
        (_, false) => 0o644,
    }
}

/// Records the modes git cannot keep (in the work tree and the state folder, those that are
/// not [`default_mode`]) and the empty folders of one part of the repository.
pub(super) fn record_layout(part: &str, dir: &Path, modes: &mut BTreeMap<String, String>, empty: &mut Vec<String>) {
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
pub(super) fn store(name: &str, repo: &Path, mut meta: Value, expect: &Value) {
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
pub(super) fn old_run(bin: &Path, repo: &Path, args: &[&str], env: &[(&str, &str)], code: Option<i32>) -> String {
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
pub(super) fn regenerate_old_journal_fixtures() {
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
