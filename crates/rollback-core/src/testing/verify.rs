//! The [`ServiceVerifier`] conformance suite: what the engine relies on when it verifies with a
//! verifier it did not build. The cases need a verifier that names at least two checks, at
//! least one of which fails; they check the report's shape, not the services.
//!
//! rollback-core runs it against the verifier built from `[[checks]]` (`tests/it/verify.rs`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use rollback_core::ServiceVerifier;
//!
//! # fn my_verifier() -> Arc<dyn ServiceVerifier> { unimplemented!() }
//! // Your verifier here: two or more checks, one of which fails.
//! rollback_core::testing::verify::run_all(&|| my_verifier());
//! ```

use std::sync::Arc;

use super::Case;
use crate::rt;
use crate::verify::{ServiceVerifier, VerificationReport};

/// Makes the verifier under test: each case calls it once.
pub type MakeVerifier = dyn Fn() -> Arc<dyn ServiceVerifier>;

/// Every case, in the order [`run_all`] runs them.
pub const CASES: &[Case<MakeVerifier>] = &[
    Case { name: "a_round_reports_every_named_check_in_order", run: a_round_reports_every_named_check_in_order },
    Case { name: "only_runs_the_checks_named", run: only_runs_the_checks_named },
    Case { name: "passed_means_every_check_passed", run: passed_means_every_check_passed },
    Case { name: "statuses_are_the_documented_words", run: statuses_are_the_documented_words },
    Case { name: "rounds_may_run_at_the_same_time", run: rounds_may_run_at_the_same_time },
];

/// Runs every case, then panics naming each that failed.
pub fn run_all(make: &MakeVerifier) {
    super::run_cases("ServiceVerifier", CASES, make);
}

fn names(make: &MakeVerifier) -> (Arc<dyn ServiceVerifier>, Vec<String>) {
    let v = make();
    let names = v.check_names();
    assert!(names.len() >= 2, "the suite needs a verifier with two or more checks, got {names:?}");
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "check names must be unique: {names:?}");
    (v, names)
}

fn round(v: &dyn ServiceVerifier, only: Option<&[String]>) -> VerificationReport {
    rt::block_on(v.verify(only))
}

/// `verify(None)` answers for every check `check_names` lists, in that order: the plan, the
/// report and the `only` filter all go by those names.
pub fn a_round_reports_every_named_check_in_order(make: &MakeVerifier) {
    let (v, names) = names(make);
    let report = round(v.as_ref(), None);
    let got: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(got, names.iter().map(String::as_str).collect::<Vec<_>>(), "one result per named check, in order");
}

/// `verify(Some(names))` runs those checks and no other.
pub fn only_runs_the_checks_named(make: &MakeVerifier) {
    let (v, names) = names(make);
    for name in &names {
        let report = round(v.as_ref(), Some(std::slice::from_ref(name)));
        let got: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(got, [name.as_str()], "only `{name}` was asked for");
    }
    let last_two = &names[names.len() - 2..];
    let report = round(v.as_ref(), Some(last_two));
    assert_eq!(report.checks.len(), 2, "two named, two run: {:?}", report.checks);
}

/// `passed` is true exactly when every check passed: a failed verification is what makes a
/// run `verification_failed` (and an automatic undo start).
pub fn passed_means_every_check_passed(make: &MakeVerifier) {
    let (v, names) = names(make);
    let report = round(v.as_ref(), None);
    assert_eq!(report.passed, report.checks.iter().all(|c| c.passed), "{report:?}");
    assert!(!report.passed, "the suite needs one failing check; all of {names:?} passed");
    let passing: Vec<String> = report.checks.iter().filter(|c| c.passed).map(|c| c.name.clone()).collect();
    if !passing.is_empty() {
        assert!(round(v.as_ref(), Some(&passing)).passed, "a round of the passing checks alone passes");
    }
}

/// Each result's `status` is one of the words the report and the CLI know, `passed` exactly
/// when the check passed, and a failed check says why.
pub fn statuses_are_the_documented_words(make: &MakeVerifier) {
    let (v, _) = names(make);
    for c in round(v.as_ref(), None).checks {
        assert!(
            ["passed", "failed", "timeout", "error"].contains(&c.status.as_str()),
            "status of `{}`: {}",
            c.name,
            c.status
        );
        assert_eq!(c.passed, c.status == "passed", "`{}`: passed is {} but status is {}", c.name, c.passed, c.status);
        assert!(c.passed || !c.reason.is_empty(), "failed check `{}` gives no reason", c.name);
    }
}

/// The engine may verify from two threads at once (a watch round and an operator's `verify`):
/// both rounds complete with the same checks.
pub fn rounds_may_run_at_the_same_time(make: &MakeVerifier) {
    let (v, names) = names(make);
    let (a, b) = rt::block_on(async { tokio::join!(v.verify(None), v.verify(None)) });
    assert_eq!(a.checks.len(), names.len());
    assert_eq!(b.checks.len(), names.len());
}
