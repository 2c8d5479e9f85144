//! `kind = "tcp"`: a TCP connection is accepted.

use super::Outcome;
use super::config::{TcpCheck, split_address};

/// Why a connection to `target` failed, for a person.
pub(super) fn describe_io(err: &std::io::Error, target: &str) -> String {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::ConnectionRefused => format!("connection refused to {target}"),
        K::ConnectionReset => format!("connection reset by {target}"),
        K::TimedOut => format!("connection to {target} timed out"),
        _ => format!("cannot connect to {target}: {err}"),
    }
}

/// Runs a `tcp` check once.
pub(super) async fn run(check: &TcpCheck) -> Outcome {
    let (host, port) = match split_address(&check.address) {
        Ok(a) => a,
        Err(e) => return Outcome::Error(e),
    };
    match tokio::net::TcpStream::connect((host.as_str(), port)).await {
        Ok(_) => Outcome::Passed(format!("connected to {}", check.address)),
        Err(e) => Outcome::Error(describe_io(&e, &check.address)),
    }
}
