//! The known-good registry: the seed's file format, target choice, bad marks.

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
