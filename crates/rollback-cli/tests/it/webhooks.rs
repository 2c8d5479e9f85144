//! `[[notify]]` after a run is recorded, end to end: the binary against real HTTP receivers.
//! What the webhooks did is journaled, so `report RUN` and `runs show` list their warnings as
//! the run's own report does; the report is written before they are waited for, and a Ctrl-C
//! during that wait only stops the wait; an undo's events say `undo`; a `[[notify]]` entry
//! that could never send anything is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rollback_testkit::TestRepo;
use rollback_testkit::server::{Behaviour, RecordedRequest, TestServer, refused_addr};
use serde_json::Value;

use crate::common::{Background, fr, journal, messy_repo, state_dir, toml_str, wait_until};

/// `forge-rollback --config CFG args...` in `r`.
fn with_cfg(r: &TestRepo, cfg: &Path, args: &[&str]) -> crate::common::Out {
    let cfg = cfg.display().to_string();
    fr(r, &[&["--config", cfg.as_str()][..], args].concat())
}

/// A configuration file holding `text`, outside the work tree.
fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollback.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}")).iter().map(|w| w.as_str().unwrap().to_owned()).collect()
}

#[test]
fn failed_webhooks_are_warnings_of_the_rebuilt_report_and_of_runs_show() {
    let (r, _) = messy_repo();
    let server = TestServer::start();
    server.set("/hooks/chat", Behaviour::Status(200));
    let (_dir, cfg) = config(&format!(
        "[[notify]]\nname = \"ops\"\nurl = {}\nretries = 0\ntimeout_secs = 5\n\n[[notify]]\nname = \"chat\"\nurl = {}\nformat = \"slack\"\n",
        toml_str(&format!("http://{}/hook", refused_addr())),
        toml_str(&server.url("/hooks/chat")),
    ));
    let out = with_cfg(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    out.ok();
    let j = out.json();
    let id = j["run_id"].as_str().unwrap().to_owned();
    let expected = ["started", "succeeded"].map(|kind| format!("webhook `ops` ({kind}) failed: connection refused"));
    let live = strings(&j["warnings"]);
    for w in &expected {
        assert!(live.contains(w), "{w} in {live:?}");
    }
    // Journaled after `finished`: each webhook and event, delivered or not.
    let records = journal(&r, &id);
    let n = records.len();
    assert_eq!(
        (records[n - 2]["record"].as_str(), records[n - 1]["record"].as_str()),
        (Some("finished"), Some("notified"))
    );
    let sent: Vec<(&str, &str, bool)> = records[n - 1]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["name"].as_str().unwrap(), x["kind"].as_str().unwrap(), x["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        sent,
        [
            ("ops", "started", false),
            ("chat", "started", true),
            ("ops", "succeeded", false),
            ("chat", "succeeded", true)
        ]
    );
    // The run's own report, the one rebuilt from the journal, and `runs show` agree.
    let dir = state_dir(&r).join("runs").join(&id);
    let on_disk = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let rebuilt = with_cfg(&r, &cfg, &["report", &id]);
    rebuilt.ok();
    let rebuilt_json = with_cfg(&r, &cfg, &["report", &id, "--format", "json"]);
    rebuilt_json.ok();
    let shown = with_cfg(&r, &cfg, &["runs", "show", &id, "--json"]);
    shown.ok();
    let report_json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    for w in &expected {
        assert!(on_disk.contains(w), "{w} in report.md:\n{on_disk}");
        assert!(strings(&report_json["warnings"]).contains(w), "{w} in report.json");
        assert!(rebuilt.stdout.contains(w), "{w} in `report RUN`:\n{}", rebuilt.stdout);
        assert!(strings(&rebuilt_json.json()["warnings"]).contains(w), "{w} in `report RUN --format json`");
        assert!(strings(&shown.json()["outcome"]["warnings"]).contains(w), "{w} in `runs show --json`");
    }
    assert!(
        rebuilt
            .stdout
            .contains("Webhooks: `ops` (started) FAILED, `chat` (started) delivered, `ops` (succeeded) FAILED"),
        "the timeline: {}",
        rebuilt.stdout
    );
    // A delivered webhook is no warning.
    assert!(!rebuilt.stdout.contains("webhook `chat`"), "{}", rebuilt.stdout);
}

#[test]
fn a_ctrl_c_while_waiting_for_webhooks_stops_the_wait_and_keeps_the_run() {
    let (r, ids) = messy_repo();
    let server = TestServer::start();
    server.set("/hooks/pager", Behaviour::Hang);
    // Would hold the run up by 2 × 100 s.
    let (_dir, cfg) = config(&format!(
        "[[notify]]\nname = \"pager\"\nurl = {}\nretries = 0\ntimeout_secs = 100\n",
        toml_str(&server.url("/hooks/pager"))
    ));
    let cfg_arg = cfg.display().to_string();
    let run =
        Background::spawn(r.path(), &["--config", &cfg_arg, "run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    // The run is recorded and its files written before the webhooks are waited for.
    let runs = state_dir(&r).join("runs");
    let mut id = String::new();
    wait_until("the run's run.json, while the webhook hangs", Duration::from_secs(60), || {
        let Ok(mut entries) = std::fs::read_dir(&runs) else { return false };
        match entries.next() {
            Some(Ok(e)) if e.path().join("run.json").exists() => {
                id = e.file_name().to_string_lossy().into_owned();
                true
            }
            _ => false,
        }
    });
    assert!(run.stderr_so_far().contains("Rollback complete"), "{}", run.stderr_so_far());
    assert!(std::fs::read_to_string(runs.join(&id).join("report.md")).unwrap().contains(&id));
    assert_eq!(server.wait_for_requests("/hooks/pager", 1, Duration::from_secs(60)).len(), 1, "the `started`");
    let status = std::process::Command::new("kill").args(["-INT", &run.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = run.wait(Duration::from_secs(60));
    out.ok();
    let j = out.json();
    assert_eq!((j["status"].as_str(), j["run_id"].as_str()), (Some("succeeded"), Some(id.as_str())));
    assert!(
        out.stderr.contains("[WARN] interrupted: the run is over and recorded; no longer waiting for its webhooks"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("next step boundary"), "{}", out.stderr);
    let expected = ["started", "succeeded"]
        .map(|kind| format!("webhook `pager` ({kind}) failed: interrupted before it was answered"));
    let rebuilt = with_cfg(&r, &cfg, &["report", &id]);
    for w in &expected {
        assert!(strings(&j["warnings"]).contains(w), "{w} in {}", j["warnings"]);
        assert!(rebuilt.stdout.contains(w), "{w} in `report RUN`:\n{}", rebuilt.stdout);
    }
    // `succeeded` was never sent: it waits for the `started` it follows.
    assert_eq!(server.requests_to("/hooks/pager").len(), 1);
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join(&id).join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["status"], "succeeded");
    assert_eq!(r.head(), ids[0]);
}

#[test]
fn an_undos_webhooks_say_undo() {
    let (r, _) = messy_repo();
    let server = TestServer::start();
    for path in ["/slack", "/json", "/iio"] {
        server.set(path, Behaviour::Status(200));
    }
    let (_dir, cfg) = config(&format!(
        "[[notify]]\nurl = {}\nformat = \"slack\"\n\n[[notify]]\nurl = {}\n\n[[notify]]\nurl = {}\nformat = \"incident-io\"\n",
        toml_str(&server.url("/slack")),
        toml_str(&server.url("/json")),
        toml_str(&server.url("/iio")),
    ));
    let out = with_cfg(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    with_cfg(&r, &cfg, &["undo", &id, "--yes"]).ok();
    let bodies =
        |path: &str| -> Vec<Value> { server.requests_to(path).iter().map(RecordedRequest::body_json).collect() };
    let slack: Vec<String> = bodies("/slack").iter().map(|b| b["text"].as_str().unwrap().to_owned()).collect();
    let titles: Vec<String> = bodies("/iio").iter().map(|b| b["title"].as_str().unwrap().to_owned()).collect();
    let run_kinds: Vec<String> = bodies("/json").iter().map(|b| b["run_kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!((slack.len(), titles.len()), (4, 4), "{slack:?} {titles:?}");
    let heads = ["rollback started", "rollback succeeded", "undo started", "undo succeeded"];
    for (i, head) in heads.iter().enumerate() {
        assert!(slack[i].starts_with(&format!("[forge-rollback] {head} in ")), "{}", slack[i]);
        assert!(titles[i].starts_with(&format!("forge-rollback: {head} in ")), "{}", titles[i]);
    }
    assert_eq!(run_kinds, ["rollback", "rollback", "undo", "undo"]);
}

#[test]
fn a_webhook_that_could_never_send_anything_is_refused() {
    let (r, _) = messy_repo();
    let head = r.head();
    for (text, key) in [
        ("events = []\n", "notify[0].events"),
        ("secret = \"\"\n", "notify[0].secret"),
        ("format = \"incident-io\"\ntoken = \" \"\n", "notify[0].token"),
    ] {
        let (_dir, cfg) = config(&format!("[[notify]]\nurl = \"https://hooks.example.com/T0-hook-key\"\n{text}"));
        for args in [&["plan", "--target", "v1"][..], &["run", "--fast", "--yes", "--target", "v1"]] {
            let out = with_cfg(&r, &cfg, args);
            out.code(2);
            assert!(out.stderr.contains(&format!("{key}: ")), "{text}: {}", out.stderr);
            assert!(!out.stderr.contains("T0-hook-key"), "{}", out.stderr);
        }
    }
    assert_eq!(r.head(), head, "nothing ran");
    assert!(!state_dir(&r).join("runs").exists());
}
