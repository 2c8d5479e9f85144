//! Bad input for every parser: config TOML, registry JSON, manifests, journals.
//!
//! Each parser gets a few thousand inputs made by mutating a valid one (truncation, byte flips,
//! insertions of JSON/TOML punctuation and invalid UTF-8, deleted and repeated spans), from a
//! fixed seed. None may panic; every refusal must carry a message. The hand-written cases
//! (`..`, absolute and `.git` paths, symlinked parents) extend `backup.rs`, which covers the
//! single-level cases: `tampered_manifests_are_rejected`,
//! `restore_refuses_a_symlinked_parent_folder_and_writes_nothing`.
#![allow(clippy::print_stderr)] // accepted/refused counts, for docs/RELIABILITY.md

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::OnceLock;

use rollback_core::backup::snapshot::restore;
use rollback_core::backup::store::FsBackupStore;
use rollback_core::backup::{
    BackupStore, EntryKind, Error as BackupError, Manifest, ManifestEntry, Origin, SnapshotId,
};
use rollback_core::config::{Config, DEFAULT_TOML};
use rollback_core::event::Recorder;
use rollback_core::plan::Level;
use rollback_core::prompt::AutoConfirm;
use rollback_core::registry::Registry;
use rollback_core::vcs::{self, BackendKind};
use rollback_core::{Rollback, RunOptions, RunStatus};
use rollback_testkit::TestRepo;

/// Mutated inputs per parser.
const CASES: u64 = 3000;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap()
    }
}

const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"=",
    b"\n",
    b"\\",
    b"\\u0000",
    b"\xff",
    b"\xc3",
    b"..",
    b"/",
    b"../../etc/passwd",
    b".git/config",
    b"null",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"[[",
    b"\"\"\"",
    b"#",
    b"\t",
    b"\0",
];

/// One mutation of `valid`, chosen by the seed.
fn mutate(valid: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = valid.to_vec();
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 => v.truncate(at),
            1 => {
                if at < v.len() {
                    v[at] ^= 1 << rng.below(8);
                }
            }
            2 => {
                let tok = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, tok.iter().copied());
            }
            3 => {
                let end = (at + 1 + rng.below(40)).min(v.len());
                v.drain(at.min(end)..end);
            }
            4 => {
                let end = (at + 1 + rng.below(40)).min(v.len());
                let span = v[at.min(end)..end].to_vec();
                v.splice(at..at, span);
            }
            _ => {
                if at < v.len() {
                    v[at] = u8::try_from(rng.below(256)).unwrap();
                }
            }
        }
    }
    v
}

/// Feeds `CASES` mutations of `valid` to `parse`; each must return without panicking, and any
/// error must display as a non-empty message. Returns (accepted, refused).
fn fuzz(name: &str, seed: u64, valid: &[u8], parse: impl Fn(&[u8]) -> Result<(), String>) -> (usize, usize) {
    assert_eq!(parse(valid), Ok(()), "{name}: the valid input itself must parse");
    let mut rng = Rng(seed);
    let (mut ok, mut refused) = (0, 0);
    for case in 0..CASES {
        let input = mutate(valid, &mut rng);
        match catch_unwind(AssertUnwindSafe(|| parse(&input))) {
            Ok(Ok(())) => ok += 1,
            Ok(Err(msg)) => {
                assert!(
                    !msg.trim().is_empty(),
                    "{name} case {case}: empty error for {:?}",
                    String::from_utf8_lossy(&input)
                );
                refused += 1;
            }
            Err(payload) => panic!(
                "{name} case {case}: panicked ({:?}) on {:?}",
                payload.downcast_ref::<String>(),
                String::from_utf8_lossy(&input)
            ),
        }
    }
    assert!(
        refused > usize::try_from(CASES / 4).unwrap(),
        "{name}: the mutations should break most inputs ({refused} refused)"
    );
    (ok, refused)
}

/// A real run's journal and manifest, to mutate.
struct RealRun {
    journal: Vec<u8>,
    manifest: Vec<u8>,
    snapshot: SnapshotId,
}

fn real_run() -> &'static RealRun {
    static RUN: OnceLock<RealRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let r = TestRepo::new();
        r.three_releases();
        r.write("app/main.py", "# local hotfix\n")
            .write("untracked/notes with space.txt", "n\n")
            .write("app/staged.py", "s\n")
            .symlink("link", "app/main.py");
        r.git(&["add", "app/staged.py"]);
        let rb = Rollback::with_backend(vcs::open(BackendKind::Git2, r.path()).unwrap(), Config::default()).unwrap();
        let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
        let out = rb.run(&opts, &AutoConfirm, &Recorder::default()).unwrap();
        assert_eq!(out.status, RunStatus::Succeeded);
        let state = r.path().join(".git/forge-rollback");
        let journal = fs::read(state.join(format!("runs/{}/journal.jsonl", out.run_id.unwrap()))).unwrap();
        let snaps: Vec<_> = fs::read_dir(state.join("backups/snapshots")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(snaps.len(), 1, "{snaps:?}");
        let manifest = fs::read(&snaps[0]).unwrap();
        let snapshot = SnapshotId::parse(snaps[0].file_stem().unwrap().to_str().unwrap()).unwrap();
        RealRun { journal, manifest, snapshot }
    })
}

const REGISTRY: &str = r#"{
  "version": "1.0",
  "description": "Known good commits for emergency rollback",
  "last_updated": "2025-12-10T17:39:00Z",
  "commits": [
    {
      "hash": "0123456789abcdef0123456789abcdef01234567",
      "date": "2025-12-01T10:00:00Z",
      "description": "release v2 \u2705",
      "verified": true,
      "services_tested": ["fastapi", "flask", "gradio"],
      "database_migrations": ["0007_users"],
      "notes": "stable for 48 hours"
    },
    {
      "hash": "89abcdef0123456789abcdef0123456789abcdef",
      "verified": false,
      "known_bad": true,
      "notes": "broke payments"
    }
  ],
  "verification_criteria": {
    "required_tests": ["health", "auth"],
    "manual_verification_required": false,
    "minimum_uptime_hours": 24
  },
  "usage_notes": ["newest verified first"],
  "update_procedure": { "steps": ["deploy", "verify", "mark"] }
}
"#;

#[test]
fn config_toml_never_panics_and_always_explains() {
    let (ok, refused) = fuzz("config", 0xc0f1_9000, DEFAULT_TOML.as_bytes(), |b| {
        Config::parse(&String::from_utf8_lossy(b), Some(Path::new("rollback.toml"))).map(|_| ()).map_err(|e| {
            let msg = e.to_string();
            assert!(msg.contains("rollback.toml"), "the error names the file: {msg}");
            msg
        })
    });
    eprintln!("config: {ok} accepted, {refused} refused");
}

#[test]
fn registry_json_never_panics_and_always_explains() {
    let (ok, refused) = fuzz("registry", 0x4e61_5747, REGISTRY.as_bytes(), |b| {
        Registry::parse(b, Path::new("known-good-commits.json")).map(|_| ()).map_err(|e| {
            let msg = e.to_string();
            assert!(msg.contains("known-good-commits.json") && msg.contains("line "), "{msg}");
            msg
        })
    });
    eprintln!("registry: {ok} accepted, {refused} refused");
}

#[test]
fn manifests_never_panic_and_always_explain() {
    let run = real_run();
    let (ok, refused) = fuzz("manifest (serde)", 0x3a4f_1e57, &run.manifest, |b| {
        serde_json::from_slice::<Manifest>(b).map(|_| ()).map_err(|e| e.to_string())
    });
    eprintln!("manifest via serde: {ok} accepted, {refused} refused");

    let dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(&dir.path().join("backups")).unwrap();
    let path = store.manifest_path(&run.snapshot);
    let (ok, refused) = fuzz("manifest (store)", 0x5707_e000, &run.manifest, |b| {
        fs::write(&path, b).unwrap();
        store.manifest(&run.snapshot).map(|_| ()).map_err(|e| e.to_string())
    });
    eprintln!("manifest via FsBackupStore: {ok} accepted, {refused} refused");
}

#[test]
fn journals_never_panic_and_always_explain() {
    let run = real_run();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let (ok, refused) = fuzz("journal", 0x10a2_4a11, &run.journal, |b| {
        fs::write(&path, b).unwrap();
        rollback_core::journal::read(&path).map(|_| ()).map_err(|e| {
            let msg = e.to_string();
            assert!(msg.contains("journal.jsonl"), "the error names the file: {msg}");
            msg
        })
    });
    eprintln!("journal: {ok} accepted, {refused} refused");
}

/// A valid manifest (from a real run) with its first entry's path replaced.
fn manifest_with_path(bad: &[u8]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&real_run().manifest).unwrap();
    let as_json = match std::str::from_utf8(bad) {
        Ok(s) => serde_json::Value::String(s.to_owned()),
        // Non-UTF-8 paths are stored as byte arrays; a bad one is made the same way.
        Err(_) => serde_json::to_value(bad).unwrap(),
    };
    v["entries"][0]["path"] = as_json;
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn manifests_with_escaping_paths_are_refused_by_serde_and_by_the_store() {
    let run = real_run();
    let dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(&dir.path().join("backups")).unwrap();
    for bad in [
        &b"../outside"[..],
        b"a/../../outside",
        b"a/..",
        b"..",
        b"/etc/passwd",
        b"//etc/passwd",
        b".git/config",
        b".git",
        b".git/hooks/post-checkout",
        b"",
        b"a//b",
        b"./a",
        b"a/./b",
        b"a\0b",
    ] {
        let text = manifest_with_path(bad);
        let shown = String::from_utf8_lossy(bad);
        let err = serde_json::from_slice::<Manifest>(&text).expect_err(&format!("`{shown}` must be refused"));
        assert!(!err.to_string().is_empty());
        fs::write(store.manifest_path(&run.snapshot), &text).unwrap();
        match store.manifest(&run.snapshot) {
            Err(BackupError::BadManifest { detail, .. }) => assert!(detail.contains("line "), "{shown}: {detail}"),
            other => panic!("`{shown}`: expected BadManifest, got {other:?}"),
        }
    }
}

#[test]
fn restore_refuses_a_symlinked_grandparent_pointing_outside_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(&dir.path().join("backups")).unwrap();
    let repo = TestRepo::new();
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir(outside.path().join("b")).unwrap();
    repo.write("keep.txt", "current\n").symlink("a", outside.path());
    let before = repo.tree();
    let (blob, _) = store.put_blob(b"escaped\n").unwrap();
    let (keep, _) = store.put_blob(b"from the backup\n").unwrap();
    let entries = vec![
        ManifestEntry {
            path: rollback_core::paths::RepoPath::new("a/b/evil.txt").unwrap(),
            origin: Origin::Untracked,
            kind: EntryKind::File { blob, size: 8, mode: 0o644 },
            owner: None,
            xattrs: vec![],
        },
        ManifestEntry {
            path: rollback_core::paths::RepoPath::new("keep.txt").unwrap(),
            origin: Origin::Tracked,
            kind: EntryKind::File { blob: keep, size: 16, mode: 0o644 },
            owner: None,
            xattrs: vec![],
        },
    ];
    let err = restore(&store, repo.path(), &entries).unwrap_err();
    assert!(matches!(&err, BackupError::UnsafeRestore { path, .. } if path == "a/b/evil.txt"), "{err}");
    assert!(!err.to_string().is_empty());
    assert!(!outside.path().join("b/evil.txt").exists(), "nothing written outside the tree");
    assert_eq!(repo.tree(), before, "nothing restored when any entry is unsafe");
}

#[test]
fn a_registry_entry_that_is_not_a_hash_is_refused_with_its_line() {
    use rollback_core::registry::{Error, Registry};
    for bad in ["HEAD~1", ":/v1", "main@{1}", "-n", "--upload-pack=touch /tmp/x", "v1.2.0", "0bf9c64z", "abc"] {
        let text = format!(
            "{{\n  \"commits\": [\n    {{ \"hash\": \"0bf9c64\", \"verified\": true }},\n    {{ \"hash\": {}, \"verified\": true }}\n  ]\n}}\n",
            serde_json::to_string(bad).unwrap()
        );
        let err = Registry::parse(text.as_bytes(), std::path::Path::new("known-good-commits.json")).unwrap_err();
        match &err {
            Error::BadHash { line, hash, .. } => assert_eq!((*line, hash.as_str()), (4, bad)),
            other => panic!("{bad}: {other:?}"),
        }
        assert!(err.to_string().contains("line 4"), "{err}");
        assert!(err.hint().unwrap().contains("git rev-parse"), "{bad}");
    }
    // The runbook's own file: 7-digit hashes, upper or lower case, full ones.
    let ok = "{ \"commits\": [ { \"hash\": \"0bf9c64\" }, { \"hash\": \"0BF9C64A\" }, { \"hash\": \"0123456789abcdef0123456789abcdef01234567\" } ] }";
    assert_eq!(Registry::parse(ok.as_bytes(), std::path::Path::new("k.json")).unwrap().commits.len(), 3);
}
