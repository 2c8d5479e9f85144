//! Files bigger than the memory the tool may use (issue 13, case 12): capture streams each
//! file into the store and undo streams each blob back, so the binary's peak memory stays far
//! below the size of the files it moves.
#![allow(clippy::print_stderr)] // the measured figures are the point

use std::io::{Read, Write};
use std::path::Path;

use rollback_testkit::TestRepo;

use crate::common::fr;

const MIB: usize = 1 << 20;
/// Each file's size, in MiB.
const FILE_MIB: usize = 150;
/// The peak resident memory allowed for one command: well below one file.
const LIMIT_MIB: i64 = 80;

/// MiB `i` of the file made from `seed`: a pseudo-random MiB, stamped with its index.
fn block(seed: u64, i: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    let mut out = Vec::with_capacity(MIB);
    while out.len() < MIB {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out[..8].copy_from_slice(&(i as u64).to_le_bytes());
    out
}

fn write_big(path: &Path, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    let mut b = block(seed, 0);
    for i in 0..FILE_MIB {
        b[..8].copy_from_slice(&(i as u64).to_le_bytes());
        f.write_all(&b).unwrap();
    }
}

fn is_big(path: &Path, seed: u64) -> bool {
    let mut f = std::fs::File::open(path).unwrap();
    let mut want = block(seed, 0);
    let mut got = vec![0u8; MIB];
    for i in 0..FILE_MIB {
        want[..8].copy_from_slice(&(i as u64).to_le_bytes());
        f.read_exact(&mut got).unwrap();
        if got != want {
            return false;
        }
    }
    f.read(&mut got).unwrap() == 0
}

/// The largest peak resident set of the child processes waited for so far, in MiB.
fn children_peak_mib() -> i64 {
    // SAFETY: `usage` is a properly sized, writable struct for the duration of the call.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut usage), 0);
        usage
    };
    // Linux reports it in KiB.
    usage.ru_maxrss / 1024
}

#[test]
fn two_untracked_files_bigger_than_the_memory_limit_round_trip() {
    let r = TestRepo::new();
    r.three_releases();
    write_big(&r.path().join("data/a.bin"), 0x1234_5678);
    write_big(&r.path().join("data/b.bin"), 0x9abc_def0);
    let setup = children_peak_mib();

    let out = fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    out.ok();
    let run_peak = children_peak_mib();
    assert!(!r.exists("data/a.bin") && !r.exists("data/b.bin"), "the rollback removed them");
    let id = out.json()["run_id"].as_str().unwrap().to_owned();

    fr(&r, &["undo", &id, "--yes", "--json"]).ok();
    let undo_peak = children_peak_mib();
    eprintln!(
        "peak RSS: git set-up {setup} MiB, run (capture) {run_peak} MiB, undo (restore) {undo_peak} MiB, \
         for 2 files of {FILE_MIB} MiB"
    );
    assert!(run_peak < LIMIT_MIB, "capture held {run_peak} MiB for {FILE_MIB} MiB files");
    assert!(undo_peak < LIMIT_MIB, "undo held {undo_peak} MiB for {FILE_MIB} MiB files");
    assert!(is_big(&r.path().join("data/a.bin"), 0x1234_5678), "a.bin is back byte for byte");
    assert!(is_big(&r.path().join("data/b.bin"), 0x9abc_def0), "b.bin is back byte for byte");
}
