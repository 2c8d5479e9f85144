//! A signal that ends forge-rollback ends the check programs it started too. They run in a
//! process group of their own (a Ctrl-C at the terminal does not reach them), and used to be
//! left running, orphaned, holding whatever they hold (a port, a lock, a connection).

use std::os::unix::process::ExitStatusExt as _;
use std::time::Duration;

use crate::common::{Background, messy_repo, toml_str, wait_until};

/// A configuration outside the tree whose one check writes its process group to `group_file`
/// and then sleeps far longer than any test.
fn slow_check(group_file: &std::path::Path) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rollback.toml");
    let script = format!("cut -d' ' -f5 /proc/$$/stat > '{}'; sleep 600", group_file.display());
    std::fs::write(
        &cfg,
        format!(
            "[[checks]]\nname = \"slow\"\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 900\n",
            toml_str(&script)
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap().to_owned();
    (dir, cfg)
}

/// Whether a process of group `pgid` is still alive (a zombie is not).
fn group_alive(pgid: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|d| {
        std::fs::read_to_string(d.path().join("stat")).is_ok_and(|stat| {
            // `pid (comm) state ppid pgrp ...`: the fields after the command's closing paren.
            let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
            let fields: Vec<&str> = rest.split(' ').collect();
            fields.len() > 2 && fields[2] == pgid && fields[0] != "Z"
        })
    })
}

fn kill(sig: &str, pid: u32) {
    assert!(std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

fn ends_its_check(args: &[&str], signals: &[&str], expect: i32) {
    let (r, _) = messy_repo();
    let group_file = r.path().join(".git/check-group");
    let (_dir, cfg) = slow_check(&group_file);
    let mut all = vec!["--config", cfg.as_str()];
    all.extend_from_slice(args);
    let mut run = Background::spawn(r.path(), &all, &[]);
    let group = || std::fs::read_to_string(&group_file).unwrap_or_default().trim().to_owned();
    wait_until("the check to start", Duration::from_secs(60), || !group().is_empty());
    let pgid = group();
    assert!(group_alive(&pgid));
    for (i, sig) in signals.iter().enumerate() {
        if i > 0 {
            wait_until("the first signal's notice", Duration::from_secs(60), || {
                run.stderr_so_far().contains("stopping at the next step boundary")
            });
        }
        kill(sig, run.child.id());
    }
    let status = run.child.wait().unwrap();
    assert_eq!(status.signal(), Some(expect), "{status:?}: {}", run.stderr_so_far());
    let gone = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        !group_alive(&pgid)
    });
    if !gone {
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
    }
    assert!(gone, "the check's group {pgid} outlived `{}`", args.join(" "));
}

#[test]
fn ctrl_c_during_verify_ends_its_check_programs() {
    ends_its_check(&["verify"], &["-INT"], libc::SIGINT);
}

#[test]
fn sigterm_during_verify_ends_its_check_programs() {
    ends_its_check(&["verify"], &["-TERM"], libc::SIGTERM);
}

#[test]
fn a_second_signal_during_a_runs_checks_ends_its_check_programs() {
    ends_its_check(&["run", "--fast", "--yes", "--target", "v1"], &["-INT", "-INT"], libc::SIGINT);
}
