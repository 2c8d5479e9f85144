//! The other kinds of checks against real things: TCP and WebSocket on 127.0.0.1, real
//! programs (and their process groups), a real SQLite file, and the auth flow.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rollback_core::verify::{DbProbe, Verifier};
use rollback_testkit::Reaper;
use rollback_testkit::server::{Behaviour, TestServer, refused_addr};

use crate::verify::{check, command, parse, run, verifier, verifier_with};

#[test]
fn tcp_checks() {
    let s = TestServer::start();
    let down = refused_addr();
    let text = format!(
        "[[checks]]\nname = \"up\"\nkind = \"tcp\"\naddress = \"{}\"\n[[checks]]\nname = \"down\"\nkind = \"tcp\"\naddress = \"{down}\"\n",
        s.addr()
    );
    let r = run(&verifier(&text));
    assert!(check(&r, "up").passed, "{r:?}");
    assert_eq!(check(&r, "up").reason, format!("connected to {}", s.addr()));
    let c = check(&r, "down");
    assert_eq!((c.status.as_str(), c.reason.clone()), ("error", format!("connection refused to {down}")));
}

#[test]
fn websocket_checks() {
    let s = TestServer::start();
    let ws = |name: &str, url: &str, extra: &str| {
        format!("[[checks]]\nname = \"{name}\"\nkind = \"websocket\"\nurl = \"{url}\"\n{extra}\n")
    };
    let down = refused_addr();
    let text = [
        ws("echo", &s.ws_url("/ws/echo"), "send = \"ping-7\"\nexpect_contains = \"ping-7\""),
        ws("handshake", &s.ws_url("/ws/echo"), ""),
        ws("wrong-reply", &s.ws_url("/ws/echo"), "send = \"hello\"\nexpect_contains = \"pong\""),
        ws("not-ws", &s.ws_url("/health"), ""),
        ws("down", &format!("ws://{down}/ws"), ""),
    ]
    .concat();
    let r = run(&verifier(&text));
    assert!(check(&r, "echo").passed, "{r:?}");
    assert!(check(&r, "handshake").passed, "{r:?}");
    let c = check(&r, "wrong-reply");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("failed", "the reply does not contain `pong` (got hello)"));
    let c = check(&r, "not-ws");
    assert_eq!(c.status, "error");
    assert!(c.reason.contains("handshake") && c.reason.contains("status 200"), "{c:?}");
    assert_eq!(check(&r, "down").reason, format!("connection refused to {down}"));
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purpose.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

fn wait_dead(pid: u32) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn command_checks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("app/marker"), "here").unwrap();
    let text = [
        command("ok", &["sh", "-c", "echo all good; cat marker"], "cwd = \"app\"\nstdout_contains = \"here\""),
        command("exit", &["sh", "-c", "echo broken >&2; exit 3"], ""),
        command("expected-3", &["sh", "-c", "exit 3"], "expect_exit = 3"),
        command("stdout", &["echo", "nope"], "stdout_contains = \"yes\""),
        command("missing", &["/nonexistent/program"], ""),
        // No shell: the metacharacters reach `echo` as they are.
        command("no-shell", &["echo", "$HOME; rm -rf /"], "stdout_contains = \"$HOME; rm -rf /\""),
    ]
    .concat();
    let r = run(&verifier_with(&text, None, dir.path().to_owned()));
    assert!(check(&r, "ok").passed, "{r:?}");
    assert_eq!(check(&r, "ok").reason, "exit code 0");
    let c = check(&r, "exit");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("failed", "exit code 3, expected 0: broken"));
    assert!(check(&r, "expected-3").passed);
    assert_eq!(check(&r, "stdout").reason, "stdout does not contain `yes`");
    let c = check(&r, "missing");
    assert_eq!(c.status, "error");
    assert!(c.reason.starts_with("cannot run `/nonexistent/program`"), "{c:?}");
    assert!(check(&r, "no-shell").passed, "{r:?}");
}

#[test]
fn a_command_that_times_out_has_its_process_group_killed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut reaper =
        Reaper { children: vec![std::process::Command::new("sleep").arg("300").spawn().unwrap()], pids: vec![] };
    let bystander = reaper.children[0].id();
    let text = command("slow", &["sh", "-c", "sleep 300 & echo $! > child.pid; wait"], "timeout_secs = 1");
    let start = Instant::now();
    let r = run(&verifier_with(&text, None, dir.path().to_owned()));
    let c = check(&r, "slow");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("timeout", "timed out after 1.0 s"));
    assert!(start.elapsed() < Duration::from_secs(10));
    let pid: u32 = std::fs::read_to_string(dir.path().join("child.pid")).unwrap().trim().parse().unwrap();
    reaper.pids.push(pid);
    assert!(wait_dead(pid), "the check's grandchild {pid} survived");
    assert!(alive(bystander), "an unrelated `sleep` was killed");
}

/// A real SQLite database behind the `DbProbe` trait.
struct Sqlite {
    path: PathBuf,
    expected: Vec<String>,
}

#[async_trait]
impl DbProbe for Sqlite {
    async fn query_scalar(&self, sql: &str) -> Result<Option<String>, String> {
        let (path, sql) = (self.path.clone(), sql.to_owned());
        tokio::task::spawn_blocking(move || {
            use rusqlite::types::ValueRef;
            let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
            let value = conn.query_row(&sql, [], |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(i) => Some(i.to_string()),
                    ValueRef::Real(f) => Some(f.to_string()),
                    ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
                })
            });
            match value {
                Ok(v) => Ok(v),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn revisions(&self) -> Result<(Vec<String>, Vec<String>), String> {
        let at = self.query_scalar("select version_num from alembic_version").await?;
        Ok((at.into_iter().collect(), self.expected.clone()))
    }
}

#[test]
fn sql_and_db_revision_checks_through_a_real_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "create table users(name text); insert into users values ('a'), ('b'), ('c');
         create table alembic_version(version_num text); insert into alembic_version values ('ae1027a6acf');",
    )
    .unwrap();
    drop(conn);
    let text = r#"
[[checks]]
name = "users"
kind = "sql"
query = "select count(*) from users"
expect = "3"
[[checks]]
name = "wrong-count"
kind = "sql"
query = "select count(*) from users"
expect = "4"
[[checks]]
name = "no-row"
kind = "sql"
query = "select name from users where name = 'zed'"
expect = "zed"
[[checks]]
name = "bad-sql"
kind = "sql"
query = "select * from nowhere"
[[checks]]
name = "any"
kind = "sql"
query = "select name from users order by name"
[[checks]]
name = "schema"
kind = "db-revision"
"#;
    let probe = |expected: &str| -> Option<Arc<dyn DbProbe>> {
        Some(Arc::new(Sqlite { path: path.clone(), expected: vec![expected.to_owned()] }))
    };
    let r = run(&verifier_with(text, probe("ae1027a6acf"), dir.path().to_owned()));
    assert!(check(&r, "users").passed, "{r:?}");
    assert_eq!(check(&r, "wrong-count").reason, "the query returned `3`, expected `4`");
    assert_eq!(check(&r, "no-row").reason, "the query returned no value (no row, or NULL), expected `zed`");
    let c = check(&r, "bad-sql");
    assert_eq!(c.status, "error");
    assert!(c.reason.contains("no such table: nowhere"), "{c:?}");
    assert_eq!(check(&r, "any").reason, "the query returned `a`");
    assert_eq!(check(&r, "schema").reason, "the database is at ae1027a6acf, as the code expects");
    let r = run(&verifier_with(text, probe("1975ea83b712"), dir.path().to_owned()));
    let c = check(&r, "schema");
    assert_eq!(c.status, "failed");
    assert!(c.reason.starts_with("the database is at ae1027a6acf, the code expects 1975ea83b712"), "{c:?}");
    // Without a database (config not validated), the checks say why they cannot run.
    let p = parse(text);
    let v = Verifier::new(p.checks, p.verify, None, dir.path().to_owned());
    let r = run(&v);
    assert!(check(&r, "schema").reason.contains("none is configured"), "{r:?}");
    assert_eq!(check(&r, "users").status, "error");
}

fn auth_flow(s: &TestServer) -> String {
    format!(
        r#"
[[checks]]
name = "auth"
kind = "flow"
base_url = "{}"
vars = {{ user = "probe-{{{{random}}}}", password = "pw-{{{{random}}}}" }}

[[checks.steps]]
name = "register"
method = "POST"
url = "/register"
json = {{ username = "{{{{user}}}}", password = "{{{{password}}}}" }}
expect_status = 200

[[checks.steps]]
name = "token"
method = "POST"
url = "/token"
form = {{ username = "{{{{user}}}}", password = "{{{{password}}}}", grant_type = "password" }}
expect_status = 200
capture = {{ token = "/access_token" }}

[[checks.steps]]
name = "protected with token"
url = "/protected"
headers = {{ Authorization = "Bearer {{{{token}}}}" }}
expect_status = 200
body_contains = "probe-"

[[checks.steps]]
name = "protected without token"
url = "/protected"
expect_status = 401
"#,
        s.url("")
    )
}

#[test]
fn the_flow_check_runs_the_seeds_auth_checklist() {
    let s = TestServer::start();
    let v = verifier(&auth_flow(&s));
    // Twice: `{{random}}` makes a new user each run, so `register` keeps working.
    for round in 1..=2 {
        let r = run(&v);
        let c = check(&r, "auth");
        assert!(c.passed, "round {round}: {c:?}");
        assert_eq!((c.kind.as_str(), c.reason.as_str()), ("flow", "4 steps passed"));
    }
    let regs = s.requests_to("/register");
    assert_eq!(regs.len(), 2);
    let users: Vec<_> = regs.iter().map(|q| q.body_json()["username"].as_str().unwrap().to_owned()).collect();
    assert_ne!(users[0], users[1]);
    assert!(users[0].starts_with("probe-") && !users[0].contains('{'), "{users:?}");
    let token = s.requests_to("/token");
    assert_eq!(token[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    assert!(token[0].body_text().contains(&format!("username={}", users[0])), "{:?}", token[0]);
    let protected = s.requests_to("/protected");
    assert_eq!(protected.len(), 4);
    assert!(protected[0].header("authorization").is_some_and(|a| a.starts_with("Bearer tok-")));
    assert_eq!(protected[1].header("authorization"), None);
}

#[test]
fn a_failing_flow_names_the_step_and_hides_captured_tokens() {
    let s = TestServer::start();
    let v = verifier(&auth_flow(&s));
    // The protected endpoint breaks.
    s.set("/protected", Behaviour::Status(500));
    let c = run(&v).checks.remove(0);
    assert_eq!(c.status, "failed");
    assert!(c.reason.starts_with("step 3 `protected with token`: status 500, expected 200"), "{c:?}");
    // A step whose capture finds nothing.
    s.set("/token", Behaviour::Json(200, r#"{"token_type":"bearer"}"#.into()));
    let c = run(&v).checks.remove(0);
    assert_eq!(c.reason, "step 2 `token`: nothing at `/access_token` in the JSON body to capture as `token`");
    // Captured values never reach the reason, even when a server echoes them.
    s.set("/token", Behaviour::Json(200, r#"{"access_token":"tok-very-secret-1","token_type":"bearer"}"#.into()));
    s.set("/protected", Behaviour::Text(500, "bad token tok-very-secret-1".into()));
    let c = run(&v).checks.remove(0);
    assert!(c.reason.contains("bad token ***") && !c.reason.contains("tok-very-secret-1"), "{c:?}");
}

/// [`auth_flow`] with a teardown step that deletes the user it registered.
fn auth_flow_with_teardown(s: &TestServer) -> String {
    format!(
        "{}\n[[checks.teardown]]\nname = \"delete the user\"\nmethod = \"DELETE\"\nurl = \"/users/me\"\nheaders = {{ Authorization = \"Bearer {{{{token}}}}\" }}\nexpect_status = 204\n",
        auth_flow(s)
    )
}

#[test]
fn flow_teardown_always_runs_and_leaves_no_rows() {
    let s = TestServer::start();
    let v = verifier(&auth_flow_with_teardown(&s));
    for round in 1..=5 {
        let c = run(&v).checks.remove(0);
        assert!(c.passed, "round {round}: {c:?}");
        assert_eq!(c.reason, "4 steps passed, teardown done");
    }
    assert_eq!(s.requests_to("/register").len(), 5);
    assert_eq!(s.user_count(), 0, "every registered user was deleted");

    // A failing step: the flow stops there, the teardown still runs.
    s.set("/protected", Behaviour::Status(500));
    let c = run(&v).checks.remove(0);
    assert_eq!(c.status, "failed");
    assert!(c.reason.starts_with("step 3 `protected with token`: status 500, expected 200"), "{c:?}");
    assert!(c.reason.ends_with("(teardown done)"), "{c:?}");
    assert_eq!(s.user_count(), 0);

    // A failing teardown fails a flow whose steps passed, and says so.
    s.set("/protected", Behaviour::Protected);
    s.set("/users/me", Behaviour::Status(500));
    let c = run(&v).checks.remove(0);
    assert_eq!(c.status, "failed");
    assert!(c.reason.starts_with("teardown step 1 `delete the user`: status 500, expected 204"), "{c:?}");
    assert_eq!(s.user_count(), 1, "the failed teardown is reported, not hidden");

    // Teardown steps are checked like steps: an unknown variable is refused at load.
    let bad = auth_flow_with_teardown(&s)
        .replace("Bearer {{token}}\" }\nexpect_status = 204", "Bearer {{nope}}\" }\nexpect_status = 204");
    let p = crate::verify::parse(&bad);
    let (key, msg) = rollback_core::verify::config::validate(&p.checks, &p.verify, false).unwrap_err();
    assert_eq!(key, "checks[0].teardown[0].headers.Authorization");
    assert!(msg.contains("unknown variable"), "{msg}");
}
