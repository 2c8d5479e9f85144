//! Owners in snapshots: `capture` records the owner of every file and symlink (and of the
//! folders above it when they differ), `restore` run as root gives them back, and a manifest
//! written before owners were recorded still loads and restores as before (what it writes
//! belongs to the user restoring).
//!
//! The tests that give files away need root (as CI runs them) and fail, saying so, when run
//! as another user.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
use std::path::Path;

use rollback_core::backup::snapshot::{capture, restore};
use rollback_core::backup::store::FsBackupStore;
use rollback_core::backup::{EntryKind, ManifestEntry, Origin, Owner, Ownership};
use rollback_core::paths::RepoPath;

const APP: Owner = Owner { uid: 4242, gid: 4343 };

#[track_caller]
fn require_root() {
    let euid = fs::metadata("/proc/self").expect("read /proc/self").uid();
    assert!(
        euid == 0,
        "this test gives files away with chown and needs root (CI runs it as root); it runs as uid {euid}\n\
         hint: run it as root, or leave it out with `-E 'not test(owner)'`"
    );
}

fn rp(p: &str) -> RepoPath {
    RepoPath::new(p).unwrap()
}

fn owner_of(p: &Path) -> Owner {
    Owner::of(&fs::symlink_metadata(p).unwrap())
}

/// As root: captured with their owners, then removed (with the folder holding them), then
/// restored: owners, the setuid bit and the root-owned folder above are back exactly.
#[test]
fn restore_as_root_gives_back_recorded_owners() {
    require_root();
    let store_dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(store_dir.path()).unwrap();
    let wd = tempfile::tempdir().unwrap();
    let w = wd.path();
    fs::create_dir_all(w.join("app/bin")).unwrap();
    fs::write(w.join("app/bin/tool"), "#!/bin/sh\n").unwrap();
    fs::write(w.join("app/bin/data"), "d").unwrap();
    std::os::unix::fs::symlink("data", w.join("app/bin/link")).unwrap();
    for p in ["app/bin", "app/bin/tool", "app/bin/data", "app/bin/link"] {
        lchown(w.join(p), Some(APP.uid), Some(APP.gid)).unwrap();
    }
    // `app` stays root's; the setuid bit after the chown (which clears it).
    fs::set_permissions(w.join("app/bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();

    let (entries, _) = capture(&store, w, &[(rp("app"), Origin::Untracked)]).unwrap();
    let root = Owner { uid: 0, gid: 0 };
    for e in &entries {
        let own = e.owner.as_ref().unwrap_or_else(|| panic!("`{}` has an owner", e.path));
        assert_eq!(own.owner, APP, "`{}`", e.path);
        assert_eq!(own.folders, [root, APP], "`{}`: `app` then `app/bin`", e.path);
    }
    assert_eq!(entries.len(), 3);

    fs::remove_dir_all(w.join("app")).unwrap();
    restore(&store, w, &entries).unwrap();
    assert_eq!(owner_of(&w.join("app")), root, "a folder of root's stays root's");
    for p in ["app/bin", "app/bin/tool", "app/bin/data", "app/bin/link"] {
        assert_eq!(owner_of(&w.join(p)), APP, "`{p}`");
    }
    let tool = fs::symlink_metadata(w.join("app/bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755, "the setuid bit survives the chown");
}

/// A manifest entry written before owners were recorded loads (no `owner` field) and is
/// restored as before: the file belongs to the user restoring. The JSON of a recorded owner
/// is `"owner": {"uid", "gid"}`, with `folders` only when one differs.
#[test]
fn an_old_manifest_without_owners_loads_and_restores_as_before() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(store_dir.path()).unwrap();
    let (blob, _) = rollback_core::backup::BackupStore::put_blob(&store, b"old\n").unwrap();
    let old =
        format!(r#"{{"path":"dir/f.txt","origin":"untracked","type":"file","blob":"{blob}","size":4,"mode":420}}"#);
    let e: ManifestEntry = serde_json::from_str(&old).unwrap();
    assert_eq!(e.owner, None);
    assert_eq!(serde_json::to_string(&e).unwrap(), old, "nothing added when nothing was recorded");

    let wd = tempfile::tempdir().unwrap();
    restore(&store, wd.path(), std::slice::from_ref(&e)).unwrap();
    let me = fs::metadata("/proc/self").unwrap();
    for p in ["dir", "dir/f.txt"] {
        let m = fs::symlink_metadata(wd.path().join(p)).unwrap();
        assert_eq!(m.uid(), me.uid(), "`{p}` belongs to the user restoring");
    }
    assert_eq!(fs::read(wd.path().join("dir/f.txt")).unwrap(), b"old\n");

    let recorded = ManifestEntry {
        owner: Some(Ownership { owner: APP, folders: vec![] }),
        kind: EntryKind::Symlink { target: rollback_core::backup::SymlinkTarget(b"t".to_vec()) },
        ..e
    };
    let json = serde_json::to_value(&recorded).unwrap();
    assert_eq!(json["owner"], serde_json::json!({ "uid": 4242, "gid": 4343 }));
}
