//! Verification benchmark: 50 HTTP checks against endpoints that each answer after 200 ms,
//! run by the same [`Verifier`] with `concurrency` unlimited and with `concurrency = 1` (one
//! at a time, the baseline), interleaved, several repetitions; prints one JSON line.
//!
//! ```text
//! cargo bench -p rollback-core --bench verify -- [--reps N] [--checks N] [--delay-ms N]
//! ```
//!
//! `scripts/bench.sh --verify-only` runs it and writes the figures into docs/PERFORMANCE.md.
// A benchmark's output is its product.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Instant;

use rollback_core::rt;
use rollback_core::verify::config::{CheckSpec, ExpectStatus, HttpCheck};
use rollback_core::verify::{CheckConfig, ServiceVerifier, Verifier, VerifySettings};
use rollback_testkit::server::{Behaviour, TestServer};

struct Args {
    reps: usize,
    checks: usize,
    delay_ms: u64,
}

fn args() -> Args {
    let mut a = Args { reps: 5, checks: 50, delay_ms: 200 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        // `cargo bench` adds `--bench`; anything unknown is ignored.
        let mut value = || it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        match flag.as_str() {
            "--reps" => a.reps = usize::try_from(value()).unwrap_or(1).max(1),
            "--checks" => a.checks = usize::try_from(value()).unwrap_or(1).max(1),
            "--delay-ms" => a.delay_ms = value(),
            _ => {}
        }
    }
    a
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { f64::midpoint(v[n / 2 - 1], v[n / 2]) }
}

/// One round; its wall time in milliseconds. Every check must pass.
fn round(v: &Verifier) -> f64 {
    let start = Instant::now();
    let report = rt::block_on(v.verify(None));
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    assert!(report.passed, "a check failed: {:?}", report.checks.iter().find(|c| !c.passed));
    ms
}

#[allow(clippy::cast_precision_loss)]
fn main() {
    let a = args();
    let server = TestServer::start();
    let checks: Vec<CheckConfig> = (0..a.checks)
        .map(|i| {
            let path = format!("/svc/{i}");
            server.set(&path, Behaviour::slow(a.delay_ms));
            let mut http = HttpCheck::get(server.url(&path));
            http.expect_status = Some(ExpectStatus(vec![200]));
            http.body_contains = Some("healthy".to_owned());
            CheckConfig::new(format!("svc-{i}"), CheckSpec::Http(http))
        })
        .collect();
    let settings = |concurrency| VerifySettings { timeout_secs: 60.0, concurrency, ..VerifySettings::default() };
    let concurrent =
        Verifier::new(checks.clone(), settings(VerifySettings::default().concurrency), None, PathBuf::new());
    let sequential = Verifier::new(checks, settings(1), None, PathBuf::new());
    // Warm-up: the runtime, the client, the server's threads.
    round(&concurrent);
    round(&sequential);
    let (mut conc, mut seq) = (Vec::new(), Vec::new());
    for rep in 0..a.reps {
        conc.push(round(&concurrent));
        seq.push(round(&sequential));
        eprintln!("rep {}/{}: concurrent {:.0} ms, one at a time {:.0} ms", rep + 1, a.reps, conc[rep], seq[rep]);
    }
    let (c, s) = (median(&conc), median(&seq));
    let ideal_sequential = (a.checks as u64 * a.delay_ms) as f64;
    let line = serde_json::json!({
        "bench": "verify",
        "checks": a.checks,
        "delay_ms": a.delay_ms,
        "reps": a.reps,
        "concurrency": VerifySettings::default().concurrency,
        "concurrent_ms": conc,
        "sequential_ms": seq,
        "concurrent_median_ms": c,
        "sequential_median_ms": s,
        "speedup": s / c,
        "concurrent_overhead_ms": c - a.delay_ms as f64,
        "sequential_overhead_per_check_ms": (s - ideal_sequential) / a.checks as f64,
    });
    println!("{line}");
    drop(server);
}
