//! A check's reason quotes text the tool does not write (a program's stderr, a service's error
//! page): the secrets the rest of the configuration names (the database URL and its password,
//! a header token, the deploy hook, a webhook's URL and signing secret) must not come through
//! it, on the terminal, in `--json`, or in any file a run leaves (run.log, the journal, the
//! report).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rollback_testkit::server::{Behaviour, TestServer, refused_addr};

use crate::common::{command, fr_env, messy_repo, state_dir, toml_str};

const S_DB_PASSWORD: &str = "dbpw-PLANTED-4242";
const S_TOKEN: &str = "tok-PLANTED-5151";
const S_DEPLOY: &str = "deploy-PLANTED-6363";
const S_HOOK: &str = "hook-PLANTED-7373";
const S_SIGNING: &str = "sign-PLANTED-8383";
const SECRETS: [&str; 5] = [S_DB_PASSWORD, S_TOKEN, S_DEPLOY, S_HOOK, S_SIGNING];

fn files_below(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            // Backup blobs hold the work tree's files as they were: not text the tool wrote.
            if !p.ends_with("blobs") {
                files_below(&p, out);
            }
        } else {
            out.push(p);
        }
    }
}

/// `text` as a configuration file outside the work tree: its folder (kept while it is used)
/// and its path.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollback.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[test]
fn a_failing_check_that_prints_the_configurations_secrets_is_reported_without_them() {
    let (repo, _) = messy_repo();
    let server = TestServer::start();
    server.set(&format!("/deploy/{S_DEPLOY}"), Behaviour::Status(200));
    server.set(&format!("/hooks/{S_HOOK}"), Behaviour::Status(200));
    let db_url = format!("postgresql://app:{S_DB_PASSWORD}@{}/app", refused_addr());
    let env = [
        ("FR_TEST_DATABASE_URL", db_url.clone()),
        ("FR_TEST_API_TOKEN", format!("Bearer {S_TOKEN}")),
        ("FR_TEST_DEPLOY_HOOK", server.url(&format!("/deploy/{S_DEPLOY}"))),
        ("FR_TEST_WEBHOOK", server.url(&format!("/hooks/{S_HOOK}"))),
        ("FR_TEST_SIGNING", S_SIGNING.to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // A connection check that fails the way such programs do: quoting what it was given.
    let db_ping = "echo \"could not connect to $FR_TEST_DATABASE_URL\" >&2; \
                   echo \"password $(echo \"$FR_TEST_DATABASE_URL\" | sed 's/.*app:\\(.*\\)@.*/\\1/') refused\" >&2; \
                   echo \"token ${FR_TEST_API_TOKEN#Bearer } expired\" >&2; exit 2";
    let hooks = "echo \"hooks $FR_TEST_DEPLOY_HOOK $FR_TEST_WEBHOOK signed with $FR_TEST_SIGNING\" >&2; exit 3";
    let (_cfg_dir, cfg) = config_file(&format!(
        "[database]\nkind = \"sql\"\nurl_env = \"FR_TEST_DATABASE_URL\"\n\n\
             [[checks]]\nname = \"api\"\nkind = \"http\"\nurl = {}\nheaders_env = {{ Authorization = \"FR_TEST_API_TOKEN\" }}\ntimeout_secs = 5\n\n\
             [[checks]]\nname = \"db-ping\"\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 5\n\n\
             [[checks]]\nname = \"hooks\"\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 5\n\n\
             [deploy]\nhook_url_env = \"FR_TEST_DEPLOY_HOOK\"\n\n\
             [[notify]]\nname = \"chat\"\nurl_env = \"FR_TEST_WEBHOOK\"\nsecret_env = \"FR_TEST_SIGNING\"\n",
        toml_str(&server.url("/health")),
        toml_str(db_ping),
        toml_str(hooks),
    ));
    let run = |args: &[&str]| {
        let mut all = vec!["--config", cfg.as_str()];
        all.extend_from_slice(args);
        fr_env(&repo, &all, &env)
    };

    let text = run(&["verify"]);
    text.code(6);
    let json = run(&["verify", "--json"]);
    json.code(6);
    let reasons: Vec<String> =
        json.json()["checks"].as_array().unwrap().iter().map(|c| c["reason"].as_str().unwrap().to_owned()).collect();
    // What the programs said is still there, the secrets masked: the URL keeps its host.
    assert_eq!(reasons[0], "status 200", "{reasons:?}");
    assert!(
        reasons[1].starts_with("exit code 2, expected 0: could not connect to postgresql://app:***@127.0.0.1:"),
        "{reasons:?}"
    );
    assert!(reasons[1].ends_with("/app | password *** refused | token *** expired"), "{reasons:?}");
    assert_eq!(reasons[2], "exit code 3, expected 0: hooks *** *** signed with ***", "{reasons:?}");
    assert!(
        server.requests_to("/health").last().unwrap().header("authorization") == Some(&format!("Bearer {S_TOKEN}"))
    );

    let out = run(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    out.code(6);
    let j = out.json();
    assert_eq!(j["status"], "verification_failed", "{}", out.stdout);
    let id = j["run_id"].as_str().unwrap().to_owned();
    let report = run(&["report", &id]);
    report.ok();
    assert!(report.stdout.contains("could not connect to postgresql://app:***@"), "{}", report.stdout);

    for (what, out) in [("verify", &text), ("verify --json", &json), ("run", &out), ("report", &report)] {
        for s in SECRETS {
            assert!(!out.stdout.contains(s), "`{what}` printed {s}:\n{}", out.stdout);
            assert!(!out.stderr.contains(s), "`{what}` printed {s} on stderr:\n{}", out.stderr);
        }
    }
    let mut files = Vec::new();
    files_below(&state_dir(&repo), &mut files);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    for must in ["run.log", "journal.jsonl", "report.md", "report.json"] {
        assert!(names.iter().any(|n| n.ends_with(must)), "no {must} among {names:?}");
    }
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        for s in SECRETS {
            assert!(!text.contains(s), "{} holds {s}:\n{text}", f.display());
        }
    }
}

/// A `[[restart]]` command's stderr, quoted when it fails, is scrubbed the same way: no
/// configured secret and no control character on the terminal or in any file of the run.
#[test]
fn a_failing_restart_that_prints_a_secret_is_reported_without_it() {
    let (repo, _) = messy_repo();
    let db_url = format!("postgresql://app:{S_DB_PASSWORD}@{}/app", refused_addr());
    let env = [("FR_TEST_DATABASE_URL", db_url.as_str())];
    let restart =
        "echo \"could not connect to $FR_TEST_DATABASE_URL\" >&2; printf '\\033[2K\\033[32m[ok]\\n' >&2; exit 1";
    let (_cfg_dir, cfg) = config_file(&format!(
        "[database]\nkind = \"sql\"\nurl_env = \"FR_TEST_DATABASE_URL\"\n\n\
         [[restart]]\nname = \"app\"\nargv = [\"sh\", \"-c\", {}]\n",
        toml_str(restart)
    ));
    let out = fr_env(&repo, &["--config", &cfg, "run", "--fast", "--yes", "--target", "v2"], &env);
    out.code(1);
    assert!(out.stderr.contains("could not connect to postgresql://app:***@"), "{}", out.stderr);
    assert!(out.stderr.contains("\\u{1b}[2K"), "{}", out.stderr);
    let mut files = Vec::new();
    files_below(&state_dir(&repo), &mut files);
    for (what, text) in files
        .iter()
        .map(|f| (f.display().to_string(), String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned()))
        .chain([("stderr".to_owned(), out.stderr.clone()), ("stdout".to_owned(), out.stdout.clone())])
    {
        assert!(!text.contains(S_DB_PASSWORD), "{what} holds the password:\n{text}");
        assert!(!text.contains('\u{1b}'), "{what} holds a raw ESC:\n{text}");
    }
}

/// The reasons of `verify --json` of `cfg`, `env` set for it (values may be any bytes).
fn verify_reasons(repo: &rollback_testkit::TestRepo, cfg: &str, env: &[(&str, &OsStr)]) -> (Vec<String>, String) {
    let mut cmd = command(repo.path(), &["--config", cfg, "verify", "--json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let json: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\nstderr: {stderr}"));
    let reasons = json["checks"].as_array().unwrap().iter().map(|c| c["reason"].as_str().unwrap().to_owned()).collect();
    (reasons, stderr)
}

/// A secret that is not UTF-8 (a Latin-1 password in the environment or in a `Basic`
/// credential) is scrubbed as the reason shows it, invalid bytes as U+FFFD, not skipped.
#[test]
fn a_secret_that_is_not_utf8_is_scrubbed_as_the_reason_shows_it() {
    let (repo, _) = messy_repo();
    let server = TestServer::start();
    // `alice:p\xe4ss-PLANTED-2`, base64.
    let basic = "Basic YWxpY2U6cORzcy1QTEFOVEVELTI=";
    let signing = OsStr::from_bytes(b"sign-\xe9-PLANTED-1");
    let (_cfg_dir, cfg) = config_file(&format!(
        "[[checks]]\nname = \"api\"\nkind = \"http\"\nurl = {}\nheaders = {{ Authorization = {} }}\ntimeout_secs = 5\n\n\
         [[checks]]\nname = \"login\"\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 5\n\n\
         [[checks]]\nname = \"signer\"\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 5\n\n\
         [[notify]]\nname = \"chat\"\nurl = {}\nsecret_env = \"FR_TEST_SIGNING\"\n",
        toml_str(&server.url("/health")),
        toml_str(basic),
        toml_str("printf 'login alice:p\\344ss-PLANTED-2 refused (password p\\344ss-PLANTED-2)\\n' >&2; exit 1"),
        toml_str("echo \"signature with $FR_TEST_SIGNING refused\" >&2; exit 1"),
        toml_str(&server.url("/hooks/chat")),
    ));
    let (reasons, stderr) = verify_reasons(&repo, &cfg, &[("FR_TEST_SIGNING", signing)]);
    assert_eq!(reasons[1], "exit code 1, expected 0: login *** refused (password ***)", "{reasons:?}");
    assert_eq!(reasons[2], "exit code 1, expected 0: signature with *** refused", "{reasons:?}");
    assert!(!stderr.contains("PLANTED"), "{stderr}");
}

/// A string of a check that holds `://` and an `@` is no secret (only a URL password in it
/// is): a URL with an `@` in its path or query stays readable in a reason, host and all.
#[test]
fn a_url_with_an_at_in_its_path_or_query_is_shown_whole() {
    let (repo, _) = messy_repo();
    let server = TestServer::start();
    let me = server.url("/users/@me");
    server.set("/users/@me", Behaviour::Text(502, format!("no profile at {me}")));
    let (_cfg_dir, cfg) = config_file(&format!(
        "[[checks]]\nname = \"me\"\nkind = \"http\"\nurl = {}\ntimeout_secs = 5\n\n\
         [[checks]]\nname = \"status\"\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 5\n\n\
         [[checks]]\nname = \"mirror\"\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 5\n",
        toml_str(&me),
        toml_str(
            "echo 'page https://status.example.com?email=ops@example.com and https://h/?to=ops@example.com' >&2; exit 1"
        ),
        // The password of a URL in a check's string is still a secret, alone too.
        toml_str("echo 'https://u:pw-PLANTED-3@127.0.0.1:1/x: password pw-PLANTED-3 refused' >&2; exit 1"),
    ));
    let (reasons, _) = verify_reasons(&repo, &cfg, &[]);
    assert_eq!(reasons[0], format!("status 502, expected 2xx: no profile at {me}"), "{reasons:?}");
    assert_eq!(
        reasons[1],
        "exit code 1, expected 0: page https://status.example.com?email=ops@example.com and https://h/?to=ops@example.com",
        "{reasons:?}"
    );
    assert_eq!(reasons[2], "exit code 1, expected 0: https://u:***@127.0.0.1:1/x: password *** refused", "{reasons:?}");
}

/// A secret under 4 bytes cannot be scrubbed (every `ok` or `db` of a reason would go): the
/// configuration still loads, and says which secret it is, never its value.
#[test]
fn a_secret_too_short_to_be_scrubbed_is_warned_about_when_the_configuration_is_loaded() {
    let (repo, _) = messy_repo();
    let server = TestServer::start();
    let config = |password: &str| {
        format!(
            "[database]\nkind = \"sql\"\nurl = {}\n\n\
             [[checks]]\nname = \"api\"\nkind = \"http\"\nurl = {}\nheaders_env = {{ X-Api-Key = \"FR_TEST_API_KEY\" }}\ntimeout_secs = 5\n",
            toml_str(&format!("postgresql://app:{password}@{}/app", refused_addr())),
            toml_str(&server.url("/health")),
        )
    };
    let (_short_dir, short) = config_file(&config("Q7z"));
    let out = fr_env(&repo, &["--config", &short, "verify"], &[("FR_TEST_API_KEY", "K9x")]);
    out.ok();
    for named in ["`database.url`", "the environment variable `FR_TEST_API_KEY`"] {
        assert!(
            out.stderr.contains(&format!(
                "the secret in {named} (or its password or token) is shorter than 4 bytes: too short to be scrubbed"
            )),
            "{named}: {}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("Q7z") && !out.stderr.contains("K9x"), "{}", out.stderr);
    // Long enough: nothing to say.
    let (_long_dir, long) = config_file(&config("Q7z-long-enough"));
    let out = fr_env(&repo, &["--config", &long, "verify"], &[("FR_TEST_API_KEY", "K9x-long-enough")]);
    out.ok();
    assert!(!out.stderr.contains("too short"), "{}", out.stderr);
}

/// The stock development URL `postgresql://postgres:postgres@...` and a Basic `user:pass`:
/// short secrets that are common words are scrubbed where they stand alone, not inside other
/// words, so a reason still says `postgresql://` and `passed`.
#[test]
fn a_short_secret_that_is_a_common_word_is_scrubbed_only_as_a_word() {
    let (repo, _) = messy_repo();
    let server = TestServer::start();
    let (_cfg_dir, cfg) = config_file(&format!(
        "[database]\nkind = \"sql\"\nurl = {}\n\n\
         [[checks]]\nname = \"api\"\nkind = \"http\"\nurl = {}\nheaders = {{ Authorization = \"Basic dXNlcjpwYXNz\" }}\ntimeout_secs = 5\n\n\
         [[checks]]\nname = \"db\"\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 5\n",
        toml_str(&format!("postgresql://postgres:postgres@{}/app", refused_addr())),
        toml_str(&server.url("/health")),
        toml_str(
            "echo 'postgresql://localhost/app: FATAL: password authentication failed for user \"postgres\"; 3 passed, 1 failed; user:pass pass' >&2; exit 1"
        ),
    ));
    let (reasons, stderr) = verify_reasons(&repo, &cfg, &[]);
    assert_eq!(
        reasons[1],
        "exit code 1, expected 0: postgresql://localhost/app: FATAL: password authentication failed for user \"***\"; 3 passed, 1 failed; *** ***",
        "{reasons:?}"
    );
    assert!(!stderr.contains("\"postgres\"") && !stderr.contains(" pass "), "{stderr}");
}
