//! Planted secrets: a full rollback of a real PostgreSQL database whose password is a known
//! secret, `.env` files with known secret values, webhook and deploy hook URLs with secret
//! paths, a check header from the environment. Every command's stdout and stderr and every
//! file the runs leave in the state folder (journals, logs, reports, manifests, `watch.jsonl`)
//! and the registry are searched for each secret. Only the backup blobs may hold the `.env`
//! values (that is what they are for), and they are private.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rollback_testkit::TestRepo;
use rollback_testkit::db::{MigrationFixture, MigratorKind, PgDatabase, SQL_DIR};
use rollback_testkit::server::{Behaviour, TestServer, refused_addr};

use crate::common::{Out, fr_env, state_dir, toml_str};

const S_DB: &str = "pw-PLANTED-db-51c2e9";
const S_ENV_OLD: &str = "envOLD-PLANTED-7d1f04";
const S_ENV_NEW: &str = "envNEW-PLANTED-a92b3e";
const S_HEADER: &str = "hdr-PLANTED-c0ffee11";
const S_WEBHOOK: &str = "hook-PLANTED-5e5e5e";
const S_WEBHOOK_DOWN: &str = "down-PLANTED-6f6f6f";
const S_DEPLOY: &str = "deploy-PLANTED-0badf00d";
const S_DEPLOY_QUERY: &str = "key-PLANTED-9q9q9q";

const SECRETS: [&str; 8] = [S_DB, S_ENV_OLD, S_ENV_NEW, S_HEADER, S_WEBHOOK, S_WEBHOOK_DOWN, S_DEPLOY, S_DEPLOY_QUERY];

/// A database owned by a role whose password is [`S_DB`]; both dropped at the end.
struct OwnedDb {
    db: Option<PgDatabase>,
    role: String,
}

impl OwnedDb {
    fn new() -> Self {
        let db = PgDatabase::new();
        let role = format!("{}_owner", db.name());
        db.server().psql("postgres", &format!("CREATE ROLE {role} LOGIN PASSWORD '{S_DB}'"));
        db.server().psql("postgres", &format!("ALTER DATABASE {} OWNER TO {role}", db.name()));
        Self { db: Some(db), role }
    }

    fn db(&self) -> &PgDatabase {
        self.db.as_ref().unwrap()
    }

    /// The URL with the role and its secret password (`port`: another port).
    fn url(&self, port: Option<u16>) -> String {
        let s = self.db().server();
        let url = s.url_with(&self.role, S_DB, self.db().name());
        match port {
            Some(p) => url.replace(&format!(":{}/", s.port), &format!(":{p}/")),
            None => url,
        }
    }
}

impl Drop for OwnedDb {
    fn drop(&mut self) {
        let server = self.db().server().clone();
        drop(self.db.take());
        let _ = Command::new("psql")
            .args(["-X", "-q", "-c", &format!("DROP ROLE IF EXISTS {}", self.role)])
            .env("PGHOST", &server.host)
            .env("PGPORT", server.port.to_string())
            .env("PGUSER", &server.user)
            .env("PGPASSWORD", &server.password)
            .env("PGDATABASE", "postgres")
            .output();
    }
}

/// The newest installed PostgreSQL client program `name` (the one matching the server).
fn pg_program(name: &str) -> String {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().map_or_else(|| name.to_owned(), |p| p.display().to_string())
}

fn database_toml(url: &str) -> String {
    format!(
        "[database]\nkind = \"sql\"\n{url}\nmigrations_dir = {}\ntimeout_secs = 120\npg_dump = {}\npg_restore = {}\n",
        toml_str(SQL_DIR),
        toml_str(&pg_program("pg_dump")),
        toml_str(&pg_program("pg_restore"))
    )
}

/// Brings the database to the migration heads of the work tree as it is now.
fn migrate(repo: &TestRepo, url: &str) {
    let text = database_toml(&format!("url = {}", toml_str(url)));
    let config = rollback_core::config::Config::parse(&text, None).unwrap();
    let m = rollback_core::db::open(config.database.as_ref().unwrap(), repo.path()).unwrap();
    rollback_core::rt::block_on(m.upgrade(&[])).unwrap();
}

/// Every file below `dir`, but none below `skip`.
fn files_below(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.starts_with(skip) {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            files_below(&p, skip, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn planted_secrets_appear_in_no_output_and_no_artifact_of_a_full_rollback() {
    let repo = TestRepo::new();
    let fx = MigrationFixture::new(&repo, MigratorKind::Sql);
    let pg = OwnedDb::new();
    let server = TestServer::start();
    server.set("/hooks/chat/T0/B1", Behaviour::Status(200));
    server.set("/deploy/srv", Behaviour::Status(200));
    let hook_path = format!("/hooks/chat/T0/B1/{S_WEBHOOK}");
    server.set(&hook_path, Behaviour::Status(200));
    let deploy_path = format!("/deploy/srv/{S_DEPLOY}");
    server.set(&deploy_path, Behaviour::Status(200));

    // A service whose pages show the request, headers included (an error page later).
    server.set("/debug", Behaviour::Echo(200));
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("rollback.toml").display().to_string();
    std::fs::write(
        &cfg,
        format!(
            "{}\n[[checks]]\nname = \"api\"\nkind = \"http\"\nurl = {}\nheaders_env = {{ \"X-Api-Token\" = \"FR_SECRET_CHECK_TOKEN\" }}\ntimeout_secs = 3\n\n[[checks]]\nname = \"schema\"\nkind = \"db-revision\"\n\n[[checks]]\nname = \"debug\"\nkind = \"http\"\nurl = {}\nheaders_env = {{ \"X-Api-Token\" = \"FR_SECRET_CHECK_TOKEN\" }}\ntimeout_secs = 3\n\n[[notify]]\nname = \"chat\"\nurl_env = \"FR_SECRET_WEBHOOK\"\n\n[[notify]]\nname = \"pager\"\nurl_env = \"FR_SECRET_WEBHOOK_DOWN\"\ntimeout_secs = 1\nretries = 0\n\n[deploy]\nhook_url_env = \"FR_SECRET_DEPLOY_HOOK\"\n",
            database_toml("url_env = \"FR_SECRET_DATABASE_URL\""),
            toml_str(&server.url("/health")),
            toml_str(&server.url("/debug")),
        ),
    )
    .unwrap();
    let good_url = pg.url(None);
    let down_url = pg.url(Some(refused_addr().port()));
    let base_env: Vec<(&str, String)> = vec![
        ("FR_SECRET_DATABASE_URL", good_url.clone()),
        ("FR_SECRET_CHECK_TOKEN", S_HEADER.into()),
        ("FR_SECRET_WEBHOOK", server.url(&hook_path)),
        ("FR_SECRET_WEBHOOK_DOWN", format!("http://{}/pager/{S_WEBHOOK_DOWN}?token={S_WEBHOOK_DOWN}", refused_addr())),
        ("FR_SECRET_DEPLOY_HOOK", format!("{}?key={S_DEPLOY_QUERY}", server.url(&deploy_path))),
    ];
    let mut outputs: Vec<(String, Out)> = Vec::new();
    // Runs the binary with the base environment, `changed` variables replaced.
    let mut run = |args: &[&str], changed: &[(&str, &str)]| -> Out {
        let env: Vec<(&str, &str)> = base_env
            .iter()
            .map(|(k, v)| (*k, changed.iter().find(|(c, _)| c == k).map_or(v.as_str(), |(_, v)| *v)))
            .collect();
        let mut all = vec!["--config", cfg.as_str()];
        all.extend_from_slice(args);
        let out = fr_env(&repo, &all, &env);
        outputs.push((args.join(" "), Out { code: out.code, stdout: out.stdout.clone(), stderr: out.stderr.clone() }));
        out
    };
    let db_down = [("FR_SECRET_DATABASE_URL", down_url.as_str())];

    // v2 is released with its database and .env, and marked known-good (env recorded).
    repo.git(&["reset", "-q", "--hard", "v2"]);
    migrate(&repo, &good_url);
    repo.write(".env", format!("API_KEY={S_ENV_OLD}\nDB_PASSWORD={S_DB}\n"));
    run(&["known-good", "mark", "v2", "--note", "release v2"], &[]).ok();
    // v3 goes out: migration 3 and a new .env.
    repo.git(&["reset", "-q", "--hard", "v3"]);
    migrate(&repo, &good_url);
    repo.write(".env", format!("API_KEY={S_ENV_NEW}\nDB_PASSWORD={S_DB}\nNEW_FLAG=1\n"));
    assert_eq!(pg.db().psql("SELECT count(*) FROM payments"), "3");

    run(&["assess"], &[]).ok();
    let a = run(&["assess", "--json"], &[]);
    a.ok();
    assert_eq!(a.json()["recommended_level"], "full", "{}", a.stdout);
    run(&["plan", "--full"], &[]).ok();
    run(&["plan", "--full", "--json"], &[]).ok();
    run(&["run", "--full", "--dry-run"], &[]).ok();
    let out = run(&["run", "--full", "--yes", "--json", "--reason", "payments broken"], &[]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded", "{}", out.stdout);
    let id = j["run_id"].as_str().unwrap().to_owned();
    // It did roll back all three: code, schema, env.
    assert_eq!(repo.head(), fx.commits[2]);
    assert_eq!(pg.db().psql("SELECT to_regclass('payments') IS NULL"), "t");
    assert_eq!(repo.read(".env"), format!("API_KEY={S_ENV_OLD}\nDB_PASSWORD={S_DB}\n").as_bytes());
    assert_eq!(j["verification"]["passed"], true, "{}", j["verification"]);
    let api = server.requests_to("/health");
    assert_eq!(api.last().unwrap().header("x-api-token"), Some(S_HEADER), "the header was sent");
    assert_eq!(server.requests_to(&deploy_path).len(), 1, "the deploy hook was called");
    assert_eq!(server.requests_to(&hook_path).len(), 2, "started and succeeded");

    for args in [
        &["report", &id][..],
        &["report", &id, "--format", "json"],
        &["runs", "show", &id],
        &["runs", "show", &id, "--json"],
        &["runs", "list", "--json"],
        &["backups", "list", "--json"],
        &["known-good", "list", "--json"],
        &["verify"],
        &["verify", "--json"],
        &["watch", "--rounds", "1", "--interval", "0.2", "--promote-after", "1"],
    ] {
        run(args, &[]).ok();
    }
    let out = run(&["undo", &id, "--yes", "--json"], &[]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stdout);
    assert_eq!(repo.read(".env"), format!("API_KEY={S_ENV_NEW}\nDB_PASSWORD={S_DB}\nNEW_FLAG=1\n").as_bytes());
    assert_eq!(pg.db().psql("SELECT count(*) FROM payments"), "3");

    // The database is down (wrong port): errors and failed checks name it without the password.
    let down = run(&["assess", "--json"], &db_down);
    down.ok();
    assert!(down.stdout.contains("db_unreachable"), "{}", down.stdout);
    let failed = run(&["run", "--full", "--yes", "--json"], &db_down);
    assert_ne!(failed.code, Some(0), "{}", failed.stderr);
    let v = run(&["verify", "--json"], &db_down);
    v.code(6);
    let schema = v.json()["checks"][1]["reason"].as_str().unwrap().to_owned();
    assert!(schema.contains(":***@"), "the database is named with its password masked: {schema}");
    assert!(schema.to_lowercase().contains("connection refused"), "the reason ends with the cause: {schema}");
    run(&["known-good", "mark", "HEAD"], &db_down).ok();
    // A failing service whose error page shows the request's headers: the check's reason quotes
    // the page, without the token.
    server.set("/debug", Behaviour::Echo(500));
    let v = run(&["verify", "--json", "--check", "debug"], &[]);
    v.code(6);
    let reason = v.json()["checks"][0]["reason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("status 500, expected 2xx: GET /debug"), "{reason}");
    // A watch round that fails on both (reasons go to watch.jsonl and the log).
    let watch = ["watch", "--rounds", "1", "--interval", "0.2", "--failures", "5", "--promote-after", "1"];
    let w = run(&watch, &db_down);
    w.ok();
    assert!(w.stderr.contains("2 of 3 check(s) failed"), "{}", w.stderr);
    server.set("/debug", Behaviour::Echo(200));
    // The deploy hook is down: the run fails at the deploy, and says why without the URL.
    let hook_down = format!("http://{}/deploy/srv/{S_DEPLOY}?key={S_DEPLOY_QUERY}", refused_addr());
    let failed = run(&["run", "--fast", "--yes", "--json", "--target", "v2"], &[("FR_SECRET_DEPLOY_HOOK", &hook_down)]);
    failed.code(1);
    let j = failed.json();
    let failed_id = j["run_id"].as_str().unwrap().to_owned();
    assert!(j["error"].as_str().unwrap().contains("the deploy hook failed"), "{}", failed.stdout);
    run(&["runs", "show", &failed_id], &[]).ok();
    run(&["report", &failed_id], &[]).ok();
    run(&["undo", &failed_id, "--yes"], &[]).ok();

    // 1. Nothing printed, ever.
    for (cmd, out) in &outputs {
        for s in SECRETS {
            assert!(!out.stdout.contains(s), "`{cmd}` printed {s} on stdout:\n{}", out.stdout);
            assert!(!out.stderr.contains(s), "`{cmd}` printed {s} on stderr:\n{}", out.stderr);
        }
    }
    // 2. No file of the state folder but the blobs, and not the registry.
    let state = state_dir(&repo);
    let blobs = state.join("backups/blobs");
    let mut files = Vec::new();
    files_below(&state, &blobs, &mut files);
    files.push(repo.path().join("rollback/config/known-good-commits.json"));
    let names: Vec<String> = files.iter().map(|f| f.strip_prefix(&state).unwrap_or(f).display().to_string()).collect();
    for must in ["watch.jsonl", "journal.jsonl", "run.log", "report.md", "report.json", "run.json"] {
        assert!(names.iter().any(|n| n.ends_with(must)), "no {must} among {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("backups/snapshots/")), "{names:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for s in SECRETS {
            assert!(!contains(&bytes, s), "{} holds {s}:\n{}", f.display(), String::from_utf8_lossy(&bytes));
        }
    }
    // 3. No request body the webhooks and the deploy hook received.
    for r in server.requests() {
        for s in SECRETS.iter().filter(|s| **s != S_HEADER) {
            assert!(!contains(&r.body, s), "a request to {} carried {s}: {}", r.path, r.body_text());
        }
    }
    // 4. The blobs do hold both .env versions (recorded with v2, and snapshotted by the run),
    //    readable by the owner only.
    let mut blob_files = Vec::new();
    files_below(&blobs, Path::new("/nonexistent"), &mut blob_files);
    for s in [S_ENV_OLD, S_ENV_NEW] {
        let holders: Vec<&PathBuf> = blob_files.iter().filter(|b| contains(&std::fs::read(b).unwrap(), s)).collect();
        assert!(!holders.is_empty(), "no blob holds the .env with {s}");
        for b in holders {
            let mode = std::fs::metadata(b).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} is readable by others ({mode:o})", b.display());
        }
    }
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o077, 0);
}
