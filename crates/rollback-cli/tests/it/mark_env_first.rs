//! `known-good mark HEAD` records the `[env] files` before it writes the registry: a mark that
//! fails while recording them (a full disk, a damaged state folder) leaves the commit
//! unmarked, instead of "verified known-good" with no env record and an error saying the mark
//! failed.

use rollback_testkit::TestRepo;

use crate::common::{fr, state_dir};

#[test]
fn known_good_mark_that_cannot_record_the_env_marks_nothing() {
    let r = TestRepo::new();
    r.write(".gitignore", ".env\n").write("app.py", "V = 1\n");
    r.write("forge-rollback.toml", "[env]\nfiles = [\".env\"]\n");
    r.commit_all("release v1");
    r.write(".env", "SECRET=v1\n");
    // The backup store cannot be opened: recording the env fails.
    std::fs::create_dir_all(state_dir(&r)).unwrap();
    std::fs::write(state_dir(&r).join("backups"), "not a folder").unwrap();
    let out = fr(&r, &["known-good", "mark", "HEAD"]);
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("backups"), "{}", out.stderr);
    let list = fr(&r, &["known-good", "list", "--json"]);
    list.ok();
    let head = r.head();
    assert!(!list.stdout.contains(&head), "the failed mark marked HEAD: {}", list.stdout);
    // Once the store can be written, the mark records both.
    std::fs::remove_file(state_dir(&r).join("backups")).unwrap();
    let out = fr(&r, &["known-good", "mark", "HEAD"]);
    out.ok();
    assert!(out.stdout.contains(".env") || out.stderr.contains(".env"), "{}\n{}", out.stdout, out.stderr);
    assert!(fr(&r, &["known-good", "list", "--json"]).stdout.contains(&head));
}
