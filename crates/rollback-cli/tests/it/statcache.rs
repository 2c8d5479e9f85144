//! The stat cache through the binary: blobs verified at an earlier snapshot are trusted only
//! while their store file keeps its stat, so a blob changed in place (same size, mtime put
//! back) is hashed again and the run refuses.

use std::fs;

use crate::common::{fr, messy_repo, rollback, state_dir, undo};

#[test]
fn a_blob_changed_in_place_after_an_undo_recorded_it_fails_the_next_snapshot() {
    let (r, _) = messy_repo();
    let run_id = rollback(&r, "v1");
    // The blobs written by the run are older than the undo's moment by more than the
    // granularity, so the undo's records of them are reusable.
    std::thread::sleep(std::time::Duration::from_millis(100));
    undo(&r, &run_id);
    let state = state_dir(&r);
    let cache: serde_json::Value = serde_json::from_slice(&fs::read(state.join("statcache.json")).unwrap()).unwrap();
    let manifest = fs::read_dir(state.join("backups/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_slice::<serde_json::Value>(&fs::read(p).unwrap()).unwrap())
        .find(|m| m["run_id"] == run_id.as_str())
        .unwrap();
    let blob = manifest["entries"].as_array().unwrap().iter().find(|e| e["path"] == "app/main.py").unwrap()["blob"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        cache["blobs"].as_array().unwrap().iter().any(|b| b["blob"] == blob.as_str()),
        "the undo recorded the blob as verified: {cache}"
    );
    assert!(
        cache["files"].as_array().unwrap().iter().any(|f| f["path"] == "app/main.py"),
        "and the file it wrote back: {cache}"
    );

    // Damage the blob in place: same size, mtime put back. Only the ctime tells.
    let path = state.join("backups/blobs").join(&blob[..2]).join(&blob[2..]);
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let len = usize::try_from(fs::metadata(&path).unwrap().len()).unwrap();
    fs::write(&path, vec![b'x'; len]).unwrap();
    fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();

    let out = fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    assert_ne!(out.json()["status"], "succeeded", "{}", out.stdout);
    assert!(
        out.stdout.contains("failed verification") || out.stderr.contains("failed verification"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(fs::read_to_string(r.path().join("app/main.py")).unwrap(), "# hotfix in progress\n", "nothing changed");
}

#[test]
fn staged_content_changed_since_the_cache_is_taken_again() {
    let (r, _) = messy_repo();
    let first = rollback(&r, "v1");
    std::thread::sleep(std::time::Duration::from_millis(100));
    undo(&r, &first);
    let cache: serde_json::Value =
        serde_json::from_slice(&fs::read(state_dir(&r).join("statcache.json")).unwrap()).unwrap();
    assert!(cache["index"]["snapshot"]["staged"].as_array().is_some_and(|s| !s.is_empty()), "{cache}");
    // Same HEAD, new staged content: the index's stat and content differ from the cache.
    r.write("app/new_staged.py", "STAGED = 2\n");
    r.git(&["add", "app/new_staged.py"]);
    let second = rollback(&r, "v1");
    undo(&r, &second);
    assert_eq!(r.git(&["show", ":app/new_staged.py"]), "STAGED = 2");
}
