//! The known-good registry: the seed's file format, target choice, bad marks.

use std::time::Duration;

use crate::common::{fr, messy_repo, picture};

#[test]
fn mark_bad_unmark_and_target_choice() {
    let (r, [v1, v2, v3]) = messy_repo();
    let out = fr(&r, &["known-good", "mark", "v1", "--note", "24h uptime"]);
    out.ok();
    assert!(out.stdout.starts_with(&format!("added {v1} as verified known-good")), "{}", out.stdout);
    fr(&r, &["known-good", "mark", "v2"]).ok();
    fr(&r, &["known-good", "bad", "v3", "--note", "500 on /"]).ok();

    let reg: serde_json::Value = serde_json::from_slice(&r.read("rollback/config/known-good-commits.json")).unwrap();
    for key in [
        "version",
        "description",
        "last_updated",
        "commits",
        "verification_criteria",
        "usage_notes",
        "update_procedure",
    ] {
        assert!(reg.get(key).is_some(), "seed key {key}");
    }
    let commits = reg["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 3);
    assert_eq!(commits[0]["hash"], v1.as_str(), "full hashes stored");
    assert_eq!(commits[0]["notes"], "24h uptime");
    assert_eq!(commits[0]["verified"], true);
    assert_eq!(commits[2]["known_bad"], true);
    assert_eq!(commits[2]["verified"], false);
    for key in ["date", "description", "services_tested", "database_migrations"] {
        assert!(commits[0].get(key).is_some(), "entry key {key}");
    }

    // The newest verified, not-bad ancestor is chosen.
    let a = fr(&r, &["assess", "--json"]).json();
    assert_eq!(a["target"]["commit"]["id"], v2.as_str());
    assert_eq!(a["target"]["source"], "registry");

    // A bad commit is refused as an explicit target.
    let before = picture(&r);
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "v3~0"]);
    out.code(4);
    assert!(out.stderr.contains("nothing to roll back") || out.stderr.contains("marked bad"), "{}", out.stderr);
    assert_eq!(picture(&r), before);

    // v2 bad too → v1 is chosen; unmark v2 → v1 still (v2 no longer verified).
    fr(&r, &["known-good", "bad", "v2"]).ok();
    assert_eq!(fr(&r, &["assess", "--json"]).json()["target"]["commit"]["id"], v1.as_str());
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "v2"]);
    out.code(4);
    assert!(out.stderr.contains("is marked bad in the known-good registry"), "{}", out.stderr);
    fr(&r, &["known-good", "unmark", "v2"]).ok();
    let list = fr(&r, &["known-good", "list", "--json"]).json();
    assert_eq!(list["commits"].as_array().unwrap().len(), 2);
    let un = fr(&r, &["known-good", "unmark", "v2"]);
    un.code(2);
    assert!(un.stderr.contains("is not in the registry"), "{}", un.stderr);
    let _ = v3;
}

#[test]
fn a_rollback_keeps_the_current_registry() {
    let (r, [_, _, v3]) = messy_repo();
    // The registry is committed at v3 and marks v3 bad; the target v1 has no registry at all,
    // and v2 an older one. Rolling back must not forget the marks.
    r.git(&["stash", "-q", "--include-untracked"]);
    fr(&r, &["known-good", "mark", "v2"]).ok();
    r.commit_all("registry at v2 era");
    r.git(&["tag", "with-registry"]);
    fr(&r, &["known-good", "bad", &v3]).ok();
    r.commit_all("mark v3 bad");
    let registry = r.read("rollback/config/known-good-commits.json");
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "with-registry"]);
    out.ok();
    assert!(
        out.stderr.contains("Kept `rollback/config/known-good-commits.json` as it was before the reset"),
        "{}",
        out.stderr
    );
    assert_eq!(r.read("rollback/config/known-good-commits.json"), registry);
}

#[test]
fn uncommitted_registry_and_config_survive_a_rollback() {
    let (r, [_, v2, _]) = messy_repo();
    // Neither file is committed: both are untracked, like any other untracked file.
    r.write("rollback/config/rollback.toml", "[caches]\nskip_dirs = [\".venv\"]\n");
    fr(&r, &["known-good", "mark", &v2]).ok();
    fr(&r, &["known-good", "bad", "v3"]).ok();
    let registry = r.read("rollback/config/known-good-commits.json");
    let config = r.read("rollback/config/rollback.toml");
    let plan = fr(&r, &["plan", "--fast", "--json"]).json();
    let removes = plan["steps"][2]["paths"].as_array().unwrap();
    assert!(removes.iter().all(|p| !p.as_str().unwrap().starts_with("rollback/")), "{removes:?}");
    let out = fr(&r, &["run", "--fast", "--yes"]);
    out.ok();
    assert_eq!(r.head(), v2);
    assert_eq!(r.read("rollback/config/known-good-commits.json"), registry, "marks survive");
    assert_eq!(r.read("rollback/config/rollback.toml"), config, "config survives");
    assert!(!r.exists("notes"), "other untracked files are still removed");
    // The next command still knows v3 is bad and v2 good.
    let list = fr(&r, &["known-good", "list", "--json"]).json();
    let states: Vec<(bool, bool)> = list["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["verified"].as_bool().unwrap(), c["known_bad"].as_bool().unwrap_or(false)))
        .collect();
    assert_eq!(states, [(true, false), (false, true)]);
}

/// Committed after the target (which has neither): the plan says the reset keeps the registry
/// and the configuration, as the run does, not that it deletes them.
#[test]
fn the_plan_says_the_committed_registry_and_config_are_kept_not_deleted() {
    let (r, [v1, v2, _]) = messy_repo();
    r.write("rollback/config/rollback.toml", "[caches]\nskip_dirs = [\".venv\"]\n");
    fr(&r, &["known-good", "mark", &v2]).ok();
    r.git(&["add", "rollback/config/rollback.toml", "rollback/config/known-good-commits.json"]);
    r.git(&["commit", "-q", "-m", "config and registry"]);
    let plan = fr(&r, &["plan", "--fast", "--target", &v1]);
    plan.ok();
    for f in ["rollback/config/rollback.toml", "rollback/config/known-good-commits.json"] {
        let line = plan.stdout.lines().find(|l| l.ends_with(&format!(" {f}"))).unwrap_or_default();
        assert!(line.trim_start().starts_with("keep (not reset) "), "{f}: {}", plan.stdout);
    }
    let j = fr(&r, &["plan", "--fast", "--target", &v1, "--json"]).json();
    let reset = j["steps"].as_array().unwrap().iter().find(|s| s["step"] == "reset").unwrap().clone();
    assert_eq!(reset["kept"].as_array().map(Vec::len), Some(2), "{reset}");
    let out = fr(&r, &["run", "--fast", "--yes", "--target", &v1]);
    out.ok();
    assert!(r.exists("rollback/config/rollback.toml") && r.exists("rollback/config/known-good-commits.json"));
}

/// `args` started in the background, paused at the failpoint `point` until the returned file
/// is written; returned once the pause is reached.
fn paused_at(
    r: &rollback_testkit::TestRepo,
    args: &[&str],
    point: &str,
) -> (crate::common::Background, std::path::PathBuf) {
    let release = r.path().join(".git/release-registry");
    let run = crate::common::Background::spawn(
        r.path(),
        args,
        &[
            ("FORGE_ROLLBACK_FAILPOINT", point),
            ("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause"),
            ("FORGE_ROLLBACK_FAILPOINT_RELEASE", release.to_str().unwrap()),
        ],
    );
    let reached = r.path().join(".git/release-registry.reached");
    crate::common::wait_until(&format!("`{point}`"), Duration::from_secs(60), || reached.exists());
    (run, release)
}

/// Two registry edits at once (a watcher's bad mark and an operator's `mark`): the second
/// waits for the first, and both entries are there. The first is paused after it read the
/// registry; the second used to write its entry meanwhile, and the first then wrote the file
/// it had read, without it (every command exited 0, and a bad commit passed `gate`).
#[test]
fn two_registry_edits_at_once_keep_both_entries() {
    let (r, [v1, v2, _]) = messy_repo();
    let (first, release) = paused_at(&r, &["known-good", "mark", "v1"], "after:registry-load");
    let mut second = crate::common::Background::spawn(r.path(), &["known-good", "bad", "v2"], &[]);
    let pid = second.child.id().to_string();
    // Until the second edit is done, or waits on the registry's lock (`/proc/locks` lists a
    // blocked `flock` as `-> FLOCK ... PID`).
    crate::common::wait_until("the second edit to finish or wait", Duration::from_secs(60), || {
        second.child.try_wait().unwrap().is_some()
            || std::fs::read_to_string("/proc/locks")
                .unwrap()
                .lines()
                .any(|l| l.contains("->") && l.split_whitespace().any(|w| w == pid))
    });
    std::fs::write(&release, "").unwrap();
    first.wait(Duration::from_secs(60)).ok();
    second.wait(Duration::from_secs(60)).ok();
    let reg: serde_json::Value = serde_json::from_slice(&r.read("rollback/config/known-good-commits.json")).unwrap();
    let hashes: Vec<&str> = reg["commits"].as_array().unwrap().iter().map(|e| e["hash"].as_str().unwrap()).collect();
    assert!(hashes.contains(&v1.as_str()) && hashes.contains(&v2.as_str()), "{hashes:?}");
    fr(&r, &["gate", "v2"]).code(4);
}

/// A commit listed twice (a registry merged from two branches: good on one, bad on the other):
/// bad wins for `gate`, the target choice and `mark`; `unmark` removes both entries.
#[test]
fn a_commit_listed_good_and_bad_counts_as_bad() {
    let (r, [v1, v2, _]) = messy_repo();
    fr(&r, &["known-good", "mark", "v1"]).ok();
    fr(&r, &["known-good", "mark", "v2"]).ok();
    let path = "rollback/config/known-good-commits.json";
    let mut reg: serde_json::Value = serde_json::from_slice(&r.read(path)).unwrap();
    let commits = reg["commits"].as_array_mut().unwrap();
    let mut bad = commits.iter().find(|e| e["hash"] == v2.as_str()).unwrap().clone();
    bad["verified"] = false.into();
    bad["known_bad"] = true.into();
    bad["notes"] = "broke payments".into();
    commits.push(bad);
    r.write(path, serde_json::to_vec_pretty(&reg).unwrap());
    let gate = fr(&r, &["gate", "v2", "--json"]);
    gate.code(4);
    assert!(gate.stdout.contains("broke payments"), "{}", gate.stdout);
    let dry = fr(&r, &["run", "--fast", "--dry-run", "--json"]);
    dry.ok();
    assert_eq!(dry.json()["plan"]["to"], v1.as_str(), "{}", dry.stdout);
    fr(&r, &["known-good", "mark", "v2"]).code(4);
    fr(&r, &["known-good", "unmark", "v2"]).ok();
    let reg: serde_json::Value = serde_json::from_slice(&r.read(path)).unwrap();
    assert!(!reg["commits"].as_array().unwrap().iter().any(|e| e["hash"] == v2.as_str()), "{reg}");
}

/// A registry that is a symlink to a file shared between checkouts (Capistrano's `shared/`):
/// a mark goes into the shared file, and the link stays a link. It used to be replaced by a
/// plain file, so the shared registry never got the mark.
#[test]
fn a_symlinked_registry_is_written_where_it_points() {
    let (r, [_, _, v3]) = messy_repo();
    let shared = tempfile::tempdir().unwrap();
    let target = shared.path().join("known-good-commits.json");
    fr(&r, &["known-good", "mark", "v1"]).ok();
    let link = r.path().join("rollback/config/known-good-commits.json");
    std::fs::rename(&link, &target).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    fr(&r, &["known-good", "bad", "v3", "--note", "broke login"]).ok();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "still a link");
    let reg: serde_json::Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert!(
        reg["commits"].as_array().unwrap().iter().any(|e| e["hash"] == v3.as_str() && e["known_bad"] == true),
        "{reg}"
    );
}

/// Written by root (`sudo`, a root watcher), the registry keeps the deploy user's owner; it
/// used to become root's.
#[test]
#[allow(clippy::print_stderr)] // says why it is skipped
fn a_registry_written_by_root_keeps_its_owner() {
    use std::os::unix::fs::MetadataExt as _;
    // `/proc/self` belongs to the process's effective user.
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("skipped: giving a file another owner needs root");
        return;
    }
    let (r, _) = messy_repo();
    fr(&r, &["known-good", "mark", "v1"]).ok();
    let path = r.path().join("rollback/config/known-good-commits.json");
    std::os::unix::fs::chown(&path, Some(1234), Some(1234)).unwrap();
    fr(&r, &["known-good", "bad", "v3"]).ok();
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 1234));
}

/// `bad` without `--note` on a known-good entry drops its note ("24h uptime, all checks
/// green"), which `gate` and the refusals quote as the reason it is bad.
#[test]
fn a_bad_mark_does_not_keep_the_known_good_note() {
    let (r, _) = messy_repo();
    fr(&r, &["known-good", "mark", "v2", "--note", "24h uptime, all checks green"]).ok();
    fr(&r, &["known-good", "bad", "v2"]).ok();
    let gate = fr(&r, &["gate", "v2"]);
    gate.code(4);
    assert!(
        !gate.stdout.contains("all checks green") && !gate.stderr.contains("all checks green"),
        "{}{}",
        gate.stdout,
        gate.stderr
    );
}

/// `mark` checks for a bad mark before it asks the database anything, and again under the
/// registry's lock: a `bad` of the same commit made in between is not lifted by the `mark`
/// (it used to be: the first check passed, and the locked edit set the entry good).
#[test]
fn a_bad_mark_made_while_a_mark_is_under_way_stays() {
    let (r, [_, v2, _]) = messy_repo();
    let (mark, release) = paused_at(&r, &["known-good", "mark", "v2"], "before:registry-edit");
    fr(&r, &["known-good", "bad", "v2", "--note", "broke login"]).ok();
    std::fs::write(&release, "").unwrap();
    let out = mark.wait(Duration::from_secs(60));
    out.code(4);
    assert!(out.stderr.contains("broke login"), "{}", out.stderr);
    fr(&r, &["gate", &v2]).code(4);
}

/// CI checks out the commit being deployed, whose tree cannot hold its own bad mark (that is
/// committed on top of it, later): `gate` there passed the very release it exists to stop.
/// `--registry-at REF` reads the registry as `REF` holds it; a `REF` without one is exit 2.
#[test]
fn gate_reads_the_registry_as_a_branch_holds_it() {
    let (r, [_, _, v3]) = messy_repo();
    fr(&r, &["known-good", "bad", "v3", "--note", "broke login"]).ok();
    r.git(&["add", "rollback/config/known-good-commits.json"]);
    r.git(&["commit", "-q", "-m", "mark v3 bad"]);
    r.git(&["branch", "-q", "registry-tip"]);
    // What CI's checkout of the release has: its own tree.
    r.git(&["stash", "-q", "-u"]);
    r.git(&["checkout", "-q", "--detach", "v3"]);
    fr(&r, &["gate", &v3]).ok();
    let gate = fr(&r, &["gate", &v3, "--registry-at", "registry-tip"]);
    gate.code(4);
    assert!(gate.stderr.contains("broke login"), "{}", gate.stderr);
    let none = fr(&r, &["gate", &v3, "--registry-at", "v1"]);
    none.code(2);
    assert!(none.stderr.contains("has no registry at `rollback/config/known-good-commits.json`"), "{}", none.stderr);
}

#[test]
fn of_two_known_good_commits_made_in_the_same_second_the_later_one_is_the_target() {
    let r = rollback_testkit::TestRepo::new();
    let [_, _, v3] = r.three_releases();
    // The test repository's clock moves only with `commit_all`: this commit has v3's time.
    r.write("app/fix.py", "FIX = 1\n");
    r.git(&["add", "-A"]);
    r.git(&["commit", "-q", "-m", "fix on top of v3, the same second"]);
    let fix = r.head();
    assert_eq!(r.git(&["log", "-1", "--format=%ct", &v3]), r.git(&["log", "-1", "--format=%ct", &fix]));
    r.write("app/main.py", "broken = True\n");
    r.commit_all("release v4");
    // Listed older first, then newer first: the order in the file does not decide.
    for order in [[&v3, &fix], [&fix, &v3]] {
        for c in order {
            fr(&r, &["known-good", "mark", c.as_str()]).ok();
        }
        let a = fr(&r, &["assess", "--json"]).json();
        assert_eq!(a["target"]["commit"]["id"], fix.as_str(), "order {order:?}");
        for c in order {
            fr(&r, &["known-good", "unmark", c.as_str()]).ok();
        }
    }
}

#[test]
fn a_known_good_commit_whose_clock_ran_behind_is_still_nearer_head_than_its_parent() {
    let r = rollback_testkit::TestRepo::new();
    let [_, _, v3] = r.three_releases();
    r.write("app/fix.py", "FIX = 1\n");
    r.git(&["add", "-A"]);
    let tree = r.git(&["write-tree"]);
    // Committed on top of v3 by a machine whose clock was an hour behind.
    let t: i64 = r.git(&["log", "-1", "--format=%ct", &v3]).parse().unwrap();
    let date = format!("@{} +0000", t - 3600);
    let out = rollback_testkit::clean_git_env(&mut std::process::Command::new("git"))
        .current_dir(r.path())
        .args(["commit-tree", &tree, "-p", &v3, "-m", "fix on top of v3, clock behind"])
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fix = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    r.git(&["reset", "-q", "--hard", &fix]);
    r.write("app/main.py", "broken = True\n");
    r.commit_all("release v4");
    for c in [&v3, &fix] {
        fr(&r, &["known-good", "mark", c.as_str()]).ok();
    }
    let a = fr(&r, &["assess", "--json"]).json();
    assert_eq!(a["target"]["commit"]["id"], fix.as_str(), "the descendant, not the later-dated parent");
}

#[test]
fn gate_says_when_there_is_no_registry() {
    let (r, [_, _, v3]) = messy_repo();
    let reg = r.path().join("rollback/config/known-good-commits.json");
    if reg.exists() {
        std::fs::remove_file(&reg).unwrap();
    }
    let out = fr(&r, &["gate", &v3]);
    out.ok();
    assert!(out.stderr.contains("note: there is no registry at"), "{}", out.stderr);
    let out = fr(&r, &["gate", &v3, "--json"]);
    out.ok();
    assert_eq!(out.json()["registry_found"], false);
    assert!(fr(&r, &["-q", "gate", &v3]).stderr.is_empty());
    fr(&r, &["known-good", "bad", "v1"]).ok();
    let out = fr(&r, &["gate", &v3, "--json"]);
    out.ok();
    assert_eq!(out.json()["registry_found"], true);
    assert!(!out.stderr.contains("note:"), "{}", out.stderr);
}

/// A config file with uncommitted edits that the target does not change: the reset puts it
/// back as it was, and `plan`, the report and the plan's JSON say it is kept. They used to
/// list it under "discard local changes" (and count it in the confirmation) while the run kept
/// it: an operator was told a fresh setting or bad mark would be lost.
#[test]
fn a_tool_file_with_local_edits_is_planned_and_reported_as_kept() {
    let (r, cfg) = crate::common::repo_with_an_edited_tool_file();

    let plan = fr(&r, &["plan", "--fast", "--target", "HEAD~1", "--json"]);
    plan.ok();
    let plan = plan.json();
    let reset = plan["steps"].as_array().unwrap().iter().find(|s| s["step"] == "reset").unwrap().clone();
    assert!(!reset["discards"].as_array().unwrap().iter().any(|p| p == cfg), "{reset:#}");
    assert!(reset["kept"].as_array().unwrap().iter().any(|p| p == cfg), "{reset:#}");
    let text = fr(&r, &["plan", "--fast", "--target", "HEAD~1"]);
    text.ok();
    assert!(text.stdout.lines().any(|l| l.contains("keep (not reset)") && l.contains(cfg)), "{}", text.stdout);
    assert!(!text.stdout.lines().any(|l| l.contains("discard") && l.contains(cfg)), "{}", text.stdout);

    let run = fr(&r, &["run", "--fast", "--yes", "--target", "HEAD~1", "--json"]);
    run.ok();
    assert_eq!(String::from_utf8(r.read(cfg)).unwrap(), "# settings\n# edited during the incident\n");
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    let report = fr(&r, &["report", &id]);
    report.ok();
    assert!(report.stdout.contains(&format!("kept as before the reset: `{cfg}`")), "{}", report.stdout);
}
