//! One rollback at a time.

use std::time::{Duration, Instant};

use crate::common::{command, fr, messy_repo, picture};

#[test]
fn a_second_run_exits_with_the_lock_code_and_names_the_holder() {
    let (r, _) = messy_repo();
    let release = r.path().join(".git/release-first-run");
    let first = command(r.path(), &["run", "--fast", "--yes", "--json", "--target", "v1"])
        .env("FORGE_ROLLBACK_FAILPOINT", "after:lock")
        .env("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause")
        .env("FORGE_ROLLBACK_FAILPOINT_RELEASE", &release)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run holds the lock and has written its details.
    let lock = r.path().join(".git/forge-rollback/lock");
    let start = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("pid")) {
        assert!(start.elapsed() < Duration::from_secs(60), "first run never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = picture(&r);
    for args in [&["run", "--fast", "--yes", "--target", "v1"][..], &["undo", "20250101-000000-abcdef", "--yes"][..]] {
        let second = fr(&r, args);
        if args[0] == "run" {
            second.code(3);
            assert!(
                second.stderr.contains(&format!("another rollback is running: pid {}", first.id())),
                "{}",
                second.stderr
            );
            assert!(second.stderr.contains("hint: wait for it to finish"), "{}", second.stderr);
        } else {
            // An unknown run is reported before the lock is even tried.
            second.code(2);
        }
    }
    let unlock = fr(&r, &["unlock"]);
    unlock.code(3);
    assert_eq!(picture(&r), before, "the refused runs changed nothing");
    std::fs::write(&release, "").unwrap();
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["status"], "succeeded");
    assert!(!lock.exists(), "released and removed");
}

#[test]
fn unlock_removes_a_dead_holders_file() {
    let (r, _) = messy_repo();
    let out = crate::common::fr_env(
        &r,
        &["run", "--fast", "--yes", "--target", "v1"],
        &[("FORGE_ROLLBACK_FAILPOINT", "after:lock")],
    );
    assert_eq!(out.code, None);
    let un = fr(&r, &["unlock"]);
    un.ok();
    assert!(un.stdout.starts_with("removed the lock left by pid "), "{}", un.stdout);
    assert!(!r.path().join(".git/forge-rollback/lock").exists());
    fr(&r, &["unlock"]).ok();
}
