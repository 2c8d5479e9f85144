//! Extended attributes after `run --fast` then `undo`: a POSIX ACL that lets the app's user
//! read a `0600` secret (`setfacl -m u:nobody:r`), a default ACL on an upload folder the
//! rollback removes, a `user.*` attribute on a tracked file with local edits, and a file
//! capability on a server binary (`setcap cap_net_bind_service+ep`). Before, the snapshot
//! recorded none of them: the undo said "succeeded" and gave back the bytes, mode and owner
//! only, so the app's user lost its read access, the binary its port, and the ACL's mask left
//! in the group bits became a real group permission.
//!
//! The attributes are set here from Rust in the kernel's own formats (what `setfacl` and
//! `setcap` write), so no `acl` or `libcap` tools are needed.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rollback_testkit::TestRepo;

use crate::common::picture;
use crate::shapes::{BACKENDS, config, fr, run_id};

/// The uid of `nobody`, the app's user the ACL lets read the secret.
const NOBODY: u32 = 65534;

/// A POSIX ACL in the kernel's format (`posix_acl_xattr`: version 2, then `(tag, perm, id)`
/// entries sorted by tag): owner `rw`, `nobody` with `perm`, owning group `---`, the mask
/// `mask`, others `---`.
fn acl(perm: u16, mask: u16) -> Vec<u8> {
    acl_with(perm, 0, mask, 0)
}

/// [`acl`] with the owning group's and others' permissions given too.
fn acl_with(perm: u16, group: u16, mask: u16, other: u16) -> Vec<u8> {
    const UNDEFINED: u32 = u32::MAX;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 6, UNDEFINED),
        (0x02, perm, NOBODY),
        (0x04, group, UNDEFINED),
        (0x10, mask, UNDEFINED),
        (0x20, other, UNDEFINED),
    ];
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// `cap_net_bind_service+ep` in the kernel's format (`vfs_cap_data`, revision 2).
fn net_bind_capability() -> Vec<u8> {
    const REVISION_2: u32 = 0x0200_0000;
    const EFFECTIVE: u32 = 0x1;
    const CAP_NET_BIND_SERVICE: u32 = 10;
    [REVISION_2 | EFFECTIVE, 1 << CAP_NET_BIND_SERVICE, 0, 0, 0].iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// `lsetxattr(path, name, value)`.
#[track_caller]
fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let (p, n) = (c(path), CString::new(name).unwrap());
    // SAFETY: NUL-terminated path and name, and a readable value of the length given.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    assert_eq!(rc, 0, "set {name} on {}: {}", path.display(), std::io::Error::last_os_error());
}

/// Every extended attribute of `path` (not followed), by name.
fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let p = c(path);
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: a NUL-terminated path and a writable buffer of the length given.
    #[allow(unsafe_code)]
    let n = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let n =
        usize::try_from(n).unwrap_or_else(|_| panic!("list {}: {}", path.display(), std::io::Error::last_os_error()));
    names.truncate(n);
    let mut out = BTreeMap::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).unwrap();
        let mut value = vec![0u8; 64 * 1024];
        // SAFETY: NUL-terminated path and name, and a writable buffer of the length given.
        #[allow(unsafe_code)]
        let len = unsafe { libc::lgetxattr(p.as_ptr(), cname.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        value.truncate(usize::try_from(len).unwrap());
        out.insert(String::from_utf8_lossy(name).into_owned(), value);
    }
    out
}

/// Every path below `dir` but `.git`, with its permission bits and extended attributes.
fn attributes(dir: &Path) -> BTreeMap<String, (String, BTreeMap<String, Vec<u8>>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (String, BTreeMap<String, Vec<u8>>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() == ".git" {
                continue;
            }
            let path = entry.path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, (format!("{:o}", m.mode() & 0o7777), xattrs(&path)));
            if m.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The three releases at v3, with: an untracked `config/secret.cfg` (`0600`) that `nobody`
/// may read through an ACL (its group bits show the mask, `0640`); an untracked `uploads/`
/// folder with a default ACL and a file in it (the rollback removes both); `requirements.txt`
/// (the target changes it) edited locally and carrying `user.origin`.
fn app_with_acls() -> TestRepo {
    let r = TestRepo::new();
    r.three_releases();
    r.write("config/secret.cfg", "TOKEN=x\n").chmod("config/secret.cfg", 0o600);
    set_xattr(&r.path().join("config/secret.cfg"), "system.posix_acl_access", &acl(4, 4));
    std::fs::create_dir(r.path().join("uploads")).unwrap();
    set_xattr(&r.path().join("uploads"), "system.posix_acl_default", &acl(6, 6));
    // Made after the default ACL: it inherits it, as an upload would.
    r.write("uploads/avatar.png", "png");
    r.write("requirements.txt", "fastapi==0.111\nstripe==7\nsentry==2\n");
    set_xattr(&r.path().join("requirements.txt"), "user.origin", b"operator");
    r
}

/// `run --fast` to v1 then `undo`, each back-end: the ACLs, the default ACL of the folder the
/// rollback removed and the `user.*` attribute are back, with the modes, next to the bytes.
/// A second round trip, after the undo recorded what it wrote back in the stat cache, records
/// and gives them back the same (the cache's own reuse is tested in rollback-core's
/// `statcache` tests).
#[test]
fn undo_gives_back_acls_and_user_attributes() {
    for backend in BACKENDS {
        let r = app_with_acls();
        let (_dir, cfg) = config(backend);
        let before = picture(&r);
        let attrs_before = attributes(r.path());
        assert_eq!(attrs_before["config/secret.cfg"].0, "640", "{backend}: the setup: the mask shows as group bits");
        assert!(attrs_before["config/secret.cfg"].1.contains_key("system.posix_acl_access"), "{backend}: the setup");
        assert!(attrs_before["uploads"].1.contains_key("system.posix_acl_default"), "{backend}: the setup");
        assert!(attrs_before["uploads/avatar.png"].1.contains_key("system.posix_acl_access"), "{backend}: inherited");
        assert_eq!(attrs_before["requirements.txt"].1["user.origin"], b"operator", "{backend}: the setup");
        for round in 1..=2 {
            let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
            out.ok();
            assert!(
                !r.exists("uploads") && !r.exists("config/secret.cfg"),
                "{backend}, round {round}: the rollback ran"
            );
            let undone = fr(&r, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]);
            undone.ok();
            assert_eq!(undone.json()["status"], "succeeded", "{backend}, round {round}: {}", undone.stderr);
            assert!(!undone.stderr.contains("not given back"), "{backend}, round {round}: {}", undone.stderr);
            assert_eq!(picture(&r), before, "{backend}, round {round}: the undo gives back the tree");
            assert_eq!(
                attributes(r.path()),
                attrs_before,
                "{backend}, round {round}: modes and extended attributes are back exactly"
            );
        }
    }
}

/// As root (as CI runs it): an untracked server binary with `cap_net_bind_service+ep` gets
/// its capability back after the undo, and its owner (given first: `chown` clears a
/// capability).
#[test]
#[allow(clippy::print_stderr)] // says why it is skipped
fn undo_gives_back_a_file_capability() {
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("skipped: setting a file capability needs root (CI runs this test as root)");
        return;
    }
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.three_releases();
        r.write("bin/server", "\x7fELF not really\n").chmod("bin/server", 0o755);
        let bin = r.path().join("bin/server");
        std::os::unix::fs::lchown(&bin, Some(4242), Some(4343)).unwrap();
        set_xattr(&bin, "security.capability", &net_bind_capability());
        let (_dir, cfg) = config(backend);
        let attrs_before = attributes(r.path());
        assert_eq!(attrs_before["bin/server"].1["security.capability"], net_bind_capability(), "{backend}: the setup");
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        out.ok();
        assert!(!r.exists("bin/server"), "{backend}: the rollback removed it");
        let undone = fr(&r, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]);
        undone.ok();
        assert_eq!(attributes(r.path()), attrs_before, "{backend}: the capability is back");
        assert_eq!(std::fs::metadata(&bin).unwrap().uid(), 4242, "{backend}: and the owner");
    }
}

/// An attribute the undo cannot set (here one the file system keeps no such namespace for,
/// put in the backup's manifest by hand) does not fail the undo, nor pass unsaid: the log
/// names the file and the attribute, and the report lists it; the rest comes back.
#[test]
fn an_attribute_that_cannot_be_set_is_named() {
    let r = app_with_acls();
    let (_dir, cfg) = config("git-cli");
    let attrs_before = attributes(r.path());
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    out.ok();
    let backup = out.json()["backup_id"].as_str().expect("a backup id").to_owned();
    let manifest = crate::common::state_dir(&r).join("backups/snapshots").join(format!("{backup}.json"));
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let entry = m["entries"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["path"] == "config/secret.cfg")
        .expect("the secret is captured");
    let recorded = entry["xattrs"].as_array_mut().expect("its ACL is recorded");
    assert_eq!(recorded[0]["name"], "system.posix_acl_access");
    recorded.push(serde_json::json!({ "name": "nosuchnamespace.x", "value": "01" }));
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();

    let undone = fr(&r, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]);
    undone.ok();
    assert!(
        undone.stderr.contains("1 extended attribute(s) recorded in backup")
            && undone.stderr.contains("`config/secret.cfg`: nosuchnamespace.x"),
        "the log names what did not come back: {}",
        undone.stderr
    );
    let report = undone.json();
    let refused = report.to_string();
    assert!(refused.contains("nosuchnamespace.x"), "the report lists it: {report}");
    assert_eq!(attributes(r.path()), attrs_before, "everything else is back");
}

/// `rehearse` copies the extended attributes into its throwaway copy and compares them after
/// the rehearsed undo: the undo of [`app_with_acls`] comes back identical, and the real tree is
/// not touched.
#[test]
fn rehearse_compares_extended_attributes() {
    let r = app_with_acls();
    let (_dir, cfg) = config("git-cli");
    let attrs_before = attributes(r.path());
    let out = fr(&r, &cfg, &["rehearse", "--fast", "--target", "v1", "--json"], &[]);
    out.ok();
    let j = out.json();
    assert_eq!(j["undo_identical"], true, "{}", out.stdout);
    assert_eq!(j["passed"], true, "{}", out.stdout);
    assert_eq!(attributes(r.path()), attrs_before, "nothing real changed");
}

/// A clean tracked file the rollback rewrites (no local edit, and the mode a checkout writes,
/// `0644`: nothing else would capture it) that carries an ACL and a `user.*` attribute is
/// captured for them, and the undo gives them back: git writes a new file without them.
#[test]
fn a_clean_tracked_file_with_attributes_gets_them_back() {
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.three_releases();
        let req = r.path().join("requirements.txt");
        set_xattr(&req, "system.posix_acl_access", &acl_with(4, 4, 4, 4));
        set_xattr(&req, "user.origin", b"operator");
        assert_eq!(r.git(&["status", "--porcelain"]), "", "{backend}: the setup: no local change");
        let (_dir, cfg) = config(backend);
        let attrs_before = attributes(r.path());
        assert_eq!(attrs_before["requirements.txt"].0, "644", "{backend}: the setup: the mode a checkout writes");
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        out.ok();
        assert_eq!(r.read("requirements.txt"), b"fastapi==0.110\n", "{backend}: the rollback ran");
        let undone = fr(&r, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]);
        undone.ok();
        assert_eq!(attributes(r.path()), attrs_before, "{backend}: the attributes are back");
    }
}
