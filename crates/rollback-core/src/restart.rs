//! `[[restart]]`: bringing services back after a rollback. Each step runs one program (argv,
//! no shell) with a timeout and an expected exit code, in order, then waits until a named
//! check passes. No process is ever killed by name: a step that times out has its own child
//! process group killed, nothing else.

use serde::{Deserialize, Serialize};

/// One `[[restart]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartStep {
    /// Name, for logs and reports.
    pub name: String,
    /// The program and its arguments (no shell).
    pub argv: Vec<String>,
    /// Longest it may run, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// The exit code that means success.
    #[serde(default)]
    pub expect_exit: i32,
    /// A check (by name) polled after the program exits until it passes.
    #[serde(default)]
    pub ready: Option<String>,
    /// Longest to wait for `ready`, in seconds.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_secs: f64,
}

fn default_timeout() -> f64 {
    60.0
}
fn default_ready_timeout() -> f64 {
    60.0
}

/// What one restart step did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartResult {
    /// The step's name.
    pub name: String,
    /// Whether it succeeded (exit code as expected and, if set, ready in time).
    pub ok: bool,
    /// Exit code, if the program exited.
    pub exit_code: Option<i32>,
    /// Program run time in milliseconds.
    pub millis: u64,
    /// Time until ready in milliseconds, if a readiness check was set and passed.
    pub ready_millis: Option<u64>,
    /// For people (stderr tail on failure, secrets removed).
    pub detail: String,
}

/// Checks the `[[restart]]` list (placeholder until the verify helper's version lands).
pub fn validate(steps: &[RestartStep], check_names: &[&str]) -> Result<(), (String, String)> {
    let _ = (steps, check_names);
    Ok(())
}
