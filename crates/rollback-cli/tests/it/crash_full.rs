//! Full rollbacks killed (`SIGKILL`) at every step boundary around the database and env steps,
//! between two committed downgrades, and inside the downgrade: `resume` reaches the state an
//! uninterrupted full run reaches (files, HEAD, `.env`, every database row), and `undo` the
//! state from before (also after the resume) — every time.

use rollback_testkit::db::{MigrationFixture, MigratorKind, SQL_DIR};
use rollback_testkit::{TestRepo, TreeState};

use crate::common::{fr, fr_env};

const POINTS: &[&str] = &[
    "after:lock",
    "end:snapshot",
    "before:db_snapshot",
    "after:db_snapshot",
    "end:db_snapshot",
    "before:downgrade",
    "inside:downgrade",
    "between:downgrades",
    "after:downgrade",
    "end:downgrade",
    "before:reset",
    "end:reset",
    "before:restore_env",
    "after:restore_env",
    "end:restore_env",
    "before:record",
];

pub(crate) fn env() -> [(&'static str, &'static str); 1] {
    [("APP_DATABASE_URL", "sqlite:///app.db")]
}

/// v0..v3 with the native migrator on SQLite; v1 deployed and marked (recording its `.env`),
/// then v3 deployed on top with rows, a new `.env` and uncommitted work.
pub(crate) fn deployed() -> TestRepo {
    let r = TestRepo::new();
    let _fx = MigrationFixture::new(&r, MigratorKind::Sql);
    r.write(
        "forge-rollback.toml",
        format!("[database]\nkind = \"sql\"\nurl_env = \"APP_DATABASE_URL\"\nmigrations_dir = \"{SQL_DIR}\"\n"),
    );
    r.git(&["reset", "-q", "--hard", "v1"]);
    migrate(&r);
    r.write(".env", "TOKEN=v1\n");
    fr_env(&r, &["known-good", "mark", "HEAD"], &env()).ok();
    r.git(&["reset", "-q", "--hard", "v3"]);
    migrate(&r);
    r.write(".env", "TOKEN=v3\nNEW=1\n");
    r.write("app/main.py", "# hotfix in progress\n");
    r
}

fn migrate(r: &TestRepo) {
    crate::common::migrate_sqlite(r);
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct State {
    tree: TreeState,
    head: String,
    dump: String,
}

/// Truncates every blob of run `id`'s database backup (found through `backups list`): its id,
/// and each damaged blob with its good content, to put back.
pub(crate) fn damage_database_backup(r: &TestRepo, id: &str) -> (String, Vec<(std::path::PathBuf, Vec<u8>)>) {
    let backups = fr(r, &["backups", "list", "--json"]).json();
    let dump = backups
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["run_id"] == id && s["database"].is_object())
        .unwrap_or_else(|| panic!("no database backup of {id}: {backups}"));
    let dump_id = dump["id"].as_str().unwrap().to_owned();
    let store = r.path().join(".git/forge-rollback/backups");
    let manifest = std::fs::read_to_string(store.join(format!("snapshots/{dump_id}.json"))).unwrap();
    // Every blob the dump's manifest names (64 hex digits).
    let mut damaged = Vec::new();
    for word in manifest.split(|c: char| !c.is_ascii_hexdigit()).filter(|w| w.len() == 64) {
        let blob = store.join("blobs").join(&word[..2]).join(&word[2..]);
        if let Ok(good) = std::fs::read(&blob) {
            std::fs::write(&blob, &good[..good.len() / 2]).unwrap();
            damaged.push((blob, good));
        }
    }
    assert!(!damaged.is_empty(), "{manifest}");
    (dump_id, damaged)
}

pub(crate) fn state(r: &TestRepo) -> State {
    let config = rollback_core::config::Config::parse(
        &format!("[database]\nkind = \"sql\"\nurl = \"sqlite:///app.db\"\nmigrations_dir = \"{SQL_DIR}\"\n"),
        None,
    )
    .unwrap();
    let db = rollback_core::db::open(config.database.as_ref().unwrap(), r.path()).unwrap();
    State {
        // The registry holds the time it was marked, and the database the time each migration
        // was applied: runs on separately built repositories differ there only.
        tree: r.tree().without(|p| {
            let s = String::from_utf8_lossy(p);
            s.starts_with("app.db") || s.contains("__pycache__") || s.ends_with("known-good-commits.json")
        }),
        head: r.head(),
        dump: without_times(&rollback_core::rt::block_on(db.database().canonical_dump()).unwrap()),
    }
}

/// `2026-11-30T11:17:08.958Z` → `[TIME]`.
fn without_times(text: &str) -> String {
    let b = text.as_bytes();
    let shape = b"0000-00-00T00:00:00";
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let fits = b.len() >= i + shape.len()
            && shape.iter().zip(&b[i..]).all(|(s, c)| if *s == b'0' { c.is_ascii_digit() } else { s == c });
        if fits {
            let mut j = i + shape.len();
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.' || b[j] == b'Z') {
                j += 1;
            }
            out.push_str("[TIME]");
            i = j;
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[test]
fn a_full_rollback_killed_anywhere_resumes_or_undoes_to_a_consistent_state() {
    let reference = {
        let r = deployed();
        fr_env(&r, &["run", "--full", "--yes", "--target", "v1"], &env()).ok();
        state(&r)
    };
    assert!(!reference.dump.contains("payments"), "the reference run downgraded");
    for point in POINTS {
        for then in ["resume", "undo"] {
            let r = deployed();
            let before = state(&r);
            let mut killed = env().to_vec();
            killed.push(("FORGE_ROLLBACK_FAILPOINT", point));
            let out = fr_env(&r, &["run", "--full", "--yes", "--target", "v1"], &killed);
            assert_eq!(out.code, None, "{point}: killed\n{}", out.stderr);
            let list = fr(&r, &["runs", "list", "--json"]).json();
            let runs = list.as_array().unwrap();
            if *point == "after:lock" {
                // Killed before the run began: nothing was journaled and nothing changed.
                assert!(runs.is_empty(), "{point}: {list:#}");
                assert_eq!(state(&r), before, "{point}");
                continue;
            }
            assert_eq!(runs.len(), 1, "{point}");
            let id = runs[0]["run_id"].as_str().unwrap().to_owned();
            if then == "undo" && ["inside:downgrade", "between:downgrades", "after:downgrade"].contains(point) {
                // The report of the run cut short in its downgrade says what it may have
                // dropped (it said "No" and nothing more).
                let report = fr_env(&r, &["report", &id], &env());
                assert!(
                    report.stdout.contains("the downgrade did not finish and may have dropped payments (3 rows)"),
                    "{point}: {}",
                    report.stdout
                );
            }
            let out = fr_env(&r, &[then, &id, "--yes", "--json"], &env());
            assert_eq!(out.code, Some(0), "{point} then {then}:\n{}\n{}", out.stdout, out.stderr);
            assert_eq!(out.json()["status"], "succeeded", "{point} then {then}");
            let expected = if then == "resume" { &reference } else { &before };
            assert_eq!(&state(&r), expected, "{point} then {then}");
            if then == "resume" {
                // And the resumed run undoes to the state from before, `.env` included (a
                // resume that scanned the tree again must still have captured it).
                let out = fr_env(&r, &["undo", &id, "--yes", "--json"], &env());
                assert_eq!(out.code, Some(0), "{point} then resume, undo:\n{}", out.stderr);
                assert_eq!(state(&r), before, "{point} then resume, undo");
            }
        }
    }
}

/// A run killed in its downgrade, then its backups removed (`backups prune` keeps an
/// unfinished run's; by hand): the report no longer says the rows it may have dropped are in a
/// backup that `undo` brings back.
#[test]
fn the_report_of_a_run_cut_short_in_its_downgrade_whose_backups_are_gone_does_not_promise_the_rows() {
    let r = deployed();
    let killed = [env()[0], ("FORGE_ROLLBACK_FAILPOINT", "after:downgrade")];
    let out = fr_env(&r, &["run", "--full", "--yes", "--target", "v1"], &killed);
    assert_eq!(out.code, None, "killed\n{}", out.stderr);
    let id = fr(&r, &["runs", "list", "--json"]).json()[0]["run_id"].as_str().unwrap().to_owned();
    let before = fr_env(&r, &["report", &id], &env());
    assert!(before.stdout.contains(&format!("`forge-rollback undo {id}` brings them back")), "{}", before.stdout);
    let j = fr_env(&r, &["report", &id, "--format", "json"], &env()).json();
    assert_eq!(j["data_loss"]["may_have_dropped"][0]["table"], "payments", "{j}");

    let after = report_with_backups_gone(&r, &id);
    assert!(after.contains("Unknown — the downgrade did not finish and may have dropped payments (3 rows)"), "{after}");
    assert!(after.contains("forge-rollback can no longer bring them back"), "{after}");
    assert!(!after.contains("brings them back"), "{after}");
}

/// Removes every backup of `r` (as an operator's `rm` would), then returns run `id`'s report,
/// whose JSON must then name no backup as keeping anything and call the loss unknown.
pub(crate) fn report_with_backups_gone(r: &TestRepo, id: &str) -> String {
    let snapshots = crate::common::state_dir(r).join("backups").join("snapshots");
    for m in std::fs::read_dir(&snapshots).unwrap() {
        std::fs::remove_file(m.unwrap().path()).unwrap();
    }
    let j = fr_env(r, &["report", id, "--format", "json"], &env()).json();
    assert!(j["data_loss"]["lost"].is_null() && j["data_loss"]["kept_in"].is_null(), "{j}");
    let report = fr_env(r, &["report", id], &env());
    report.ok();
    report.stdout
}
