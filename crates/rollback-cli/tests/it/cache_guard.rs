//! `[caches]` clears without a snapshot, so neither the configuration nor the step may reach
//! what undo could not bring back: a glob that names nothing is refused, and the env files,
//! the SQLite database and its sidecar files, the configuration, and nested repositories are
//! never cleared, whatever the globs say.

use crate::common::{fr, messy_repo, picture};

#[test]
fn a_cache_glob_that_matches_everything_is_refused_before_anything_changes() {
    let (r, _) = messy_repo();
    r.write(".gitignore", "*.db\n.env\n__pycache__/\n*.pyc\n");
    r.git(&["commit", "-qam", "ignore the database"]);
    r.write("app.db", "rows\n");
    let cfg = tempfile::tempdir().unwrap();
    for glob in ["**", "*", "**/*", "/**"] {
        let path = cfg.path().join("rollback.toml");
        std::fs::write(&path, format!("[caches]\nglobs = [\"**/*.pyc\", \"{glob}\"]\n")).unwrap();
        let config = path.to_str().unwrap();
        let before = picture(&r);
        for args in [&["plan", "--fast", "--target", "v2"][..], &["run", "--fast", "--yes", "--target", "v2"]] {
            let out = fr(&r, &[&["--config", config][..], args].concat());
            out.code(2);
            assert!(out.stderr.contains("caches.globs") && out.stderr.contains(&format!("`{glob}`")), "{}", out.stderr);
        }
        assert_eq!(picture(&r), before, "{glob}: nothing changed");
        assert!(r.exists(".env") && r.exists("app.db"));
        assert!(!r.path().join(".git/forge-rollback/runs").exists(), "no run was started");
    }
}

#[test]
fn clear_caches_never_deletes_env_files_the_database_the_config_or_a_nested_repository() {
    let (r, _) = messy_repo();
    r.write(".gitignore", ".env\n__pycache__/\n*.pyc\n*.db*\n*.bin\nconfig/\nvendor/\n*.tmp\nforge-rollback.toml\n");
    r.git(&["commit", "-qam", "ignore local files"]);
    // Every one of these matches a cache glob below; only `scratch.bin`, `junk.tmp` and
    // `__pycache__` are caches.
    let config = r#"
[caches]
globs = ["**/__pycache__", "**/*.pyc", ".env", "config", "app.db*", "*.bin", "forge-rollback.toml", "vendor", "*.tmp"]
[env]
files = [".env", "config/prod.env"]
[database]
kind = "sql"
url = "sqlite:///app.db"
"#;
    r.write("forge-rollback.toml", config)
        .write("config/prod.env", "TOKEN=prod\n")
        .write("app.db", "")
        .write("app.db-wal", "wal")
        .write("app.db-shm", "shm")
        .write("app.db-journal", "journal")
        .write("scratch.bin", "scratch")
        .write("vendor/lib/README", "vendored\n")
        .write("junk.tmp", "junk");
    rollback_testkit::TestRepo::git_output(&r, &["init", "-q", "vendor/lib"]);
    assert!(r.exists("vendor/lib/.git/HEAD"));
    let kept =
        [".env", "config/prod.env", "app.db", "forge-rollback.toml", "vendor/lib/README", "vendor/lib/.git/HEAD"];

    // The plan does not list them.
    let plan = fr(&r, &["plan", "--fast", "--target", "v2", "--json"]);
    plan.ok();
    let steps = plan.json()["steps"].as_array().unwrap().clone();
    let found = steps.iter().find(|s| s["step"] == "clear_caches").unwrap()["found"].clone();
    let mut found: Vec<&str> = found.as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    found.sort_unstable();
    assert_eq!(found, ["app/__pycache__", "junk.tmp", "scratch.bin"]);

    // The run does not delete them. (The sidecar files are SQLite's: opening the database to
    // assess it may remove or rewrite them, as any connection may; the plan shows that
    // `clear_caches` leaves them alone.)
    let run = fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v2"]);
    run.ok();
    for p in kept {
        assert!(r.exists(p), "{p} was deleted as a cache");
    }
    assert!(!r.exists("junk.tmp") && !r.exists("scratch.bin") && !r.exists("app/__pycache__"));
    assert_eq!(String::from_utf8(r.read("config/prod.env")).unwrap(), "TOKEN=prod\n");
}
