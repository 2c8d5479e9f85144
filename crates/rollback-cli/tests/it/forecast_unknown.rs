//! A full rollback whose data-loss forecast could not be made (here a failpoint makes it fail;
//! in production, say, a role without CREATEDB on PostgreSQL): the unattended run says so, and
//! its report answers "unknown", never "no", to whether the downgrade lost rows.

use crate::common::fr_env;
use crate::crash_full::{deployed, env, report_with_backups_gone};

#[test]
fn a_downgrade_without_a_forecast_is_reported_as_unknown_loss_not_as_none() {
    let r = deployed();
    let unforecast =
        [env()[0], ("FORGE_ROLLBACK_FAILPOINT", "inside:forecast"), ("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")];
    let out = fr_env(&r, &["run", "--full", "--yes", "--target", "v1", "--json"], &unforecast);
    out.ok();
    // Said while it ran (no one saw a confirmation), and in the result.
    assert!(out.stderr.contains("the data-loss forecast could not be made ("), "{}", out.stderr);
    assert!(
        out.stderr.contains("the database is backed up before the downgrade, and `undo` puts it back"),
        "{}",
        out.stderr
    );
    let result = out.json();
    assert!(
        result["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("forecast could not be made")),
        "{result}"
    );
    // The downgrade did drop `payments` (v3 -> v1): the truth is not "no loss".
    let id = result["run_id"].as_str().unwrap().to_owned();
    let report = fr_env(&r, &["report", &id], &env());
    report.ok();
    // With the reason the run gave: the failpoint's error, as the warning said it.
    let warned = out.stderr.split("the data-loss forecast could not be made (").nth(1).unwrap();
    let reason = format!("the data-loss forecast could not be made ({}", warned.split("): ").next().unwrap());
    assert!(reason.contains("failpoint"), "{reason}");
    assert!(
        report.stdout.contains(&format!(
            "Unknown — the downgrade ran, and what it dropped from the live database was not measured, as {reason});"
        )),
        "{reason}\n{}",
        report.stdout
    );
    assert!(report.stdout.contains(&format!("`forge-rollback undo {id}` brings it back")), "{}", report.stdout);
    assert!(!report.stdout.contains("No — every changed"), "{}", report.stdout);
    let j = fr_env(&r, &["report", &id, "--format", "json"], &env()).json();
    assert!(j["data_loss"]["lost"].is_null(), "{j}");
    assert!(j["data_loss"]["kept_in"].is_string(), "{j}");
    assert_eq!(j["data_loss"]["not_measured"], format!("{reason})"), "{j}");

    // Its backups gone: nothing is promised any more.
    let after = report_with_backups_gone(&r, &id);
    assert!(
        after.contains(&format!(
            "Unknown — what the downgrade dropped from the live database was not measured, as {reason});"
        )),
        "{after}"
    );
    assert!(after.contains("forge-rollback can no longer bring it back"), "{after}");
    assert!(!after.contains("brings it back,"), "{after}");
}
