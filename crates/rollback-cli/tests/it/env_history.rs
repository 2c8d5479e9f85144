//! Env history in the shapes deploy tools leave and after damage: an `.env` that is a symlink
//! into a shared folder (Capistrano), an env file below a symlinked folder, a folder where an
//! env file goes, a damaged record (a corrupt blob, a torn manifest), `backups prune` next to
//! env records, and a resume after a crash inside `restore_env`.

use std::path::{Path, PathBuf};

use rollback_testkit::TestRepo;

use crate::common::{fr, fr_env, state_dir};

/// v1 with `[env] files = [".env"]`, tagged; `.env` written by `env_v1` and marked known-good
/// (recording it); then v2 committed on top. `env_v1` runs before the mark.
fn marked_v1_then_v2(env_v1: impl FnOnce(&TestRepo)) -> TestRepo {
    let r = TestRepo::new();
    r.write(".gitignore", ".env\nconfig/\n").write("app.py", "V = 1\n");
    r.write("forge-rollback.toml", "[env]\nfiles = [\".env\"]\n");
    r.commit_all("release v1");
    r.git(&["tag", "v1"]);
    env_v1(&r);
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    r.commit_all("registry");
    r.write("app.py", "V = 2\n");
    r.commit_all("release v2");
    r
}

/// The env records' manifests in the store.
fn env_manifests(r: &TestRepo) -> Vec<PathBuf> {
    let dir = state_dir(r).join("backups/snapshots");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("-env-"))
        .collect();
    out.sort();
    out
}

fn blob_file(r: &TestRepo, manifest: &Path) -> PathBuf {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    let blob =
        m["entries"][0]["kind"]["blob"].as_str().or_else(|| m["entries"][0]["blob"].as_str()).unwrap().to_owned();
    state_dir(r).join("backups/blobs").join(&blob[..2]).join(&blob[2..])
}

/// `.env -> <shared>/.env` (the Capistrano layout), v1 marked with `API_KEY=good111`, then the
/// broken release's env (`API_KEY=bad999`) written where the link leads. The shared folder
/// lives as long as the first value.
fn linked_env_marked_then_broken() -> (tempfile::TempDir, PathBuf, TestRepo) {
    let shared = tempfile::tempdir().unwrap();
    let shared_env = shared.path().join(".env");
    let r = marked_v1_then_v2(|r| {
        std::fs::write(&shared_env, "API_KEY=good111\n").unwrap();
        r.symlink(".env", &shared_env);
    });
    std::fs::write(&shared_env, "API_KEY=bad999\n").unwrap();
    (shared, shared_env, r)
}

fn id_of(manifest: &Path) -> String {
    manifest.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn an_env_file_that_is_a_symlink_is_recorded_by_its_content_and_undo_gives_the_link_back() {
    let (_shared, shared_env, r) = linked_env_marked_then_broken();

    let a = fr(&r, &["assess", "--json"]).json();
    assert_eq!(a["env"]["diffs"][0]["changed"], serde_json::json!(["API_KEY"]), "{a:#}");

    let out = fr(&r, &["run", "--full", "--yes", "--json"]);
    out.ok();
    let meta = std::fs::symlink_metadata(r.path().join(".env")).unwrap();
    assert!(meta.is_file(), "the recorded content replaces the link");
    assert_eq!(r.read(".env"), b"API_KEY=good111\n");
    assert_eq!(std::fs::read(&shared_env).unwrap(), b"API_KEY=bad999\n", "never written through the link");
    assert!(out.stderr.contains("Env files restored: .env"), "{}", out.stderr);

    let run = out.json()["run_id"].as_str().unwrap().to_owned();
    fr(&r, &["undo", &run, "--yes"]).ok();
    assert_eq!(std::fs::read_link(r.path().join(".env")).unwrap(), shared_env, "the link is back");
    assert_eq!(std::fs::read(&shared_env).unwrap(), b"API_KEY=bad999\n");
}

#[test]
fn marking_says_an_env_file_behind_a_symlink_is_followed_or_why_it_is_not_recorded() {
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join(".env"), "K=1\n").unwrap();
    std::fs::create_dir(shared.path().join("config")).unwrap();
    std::fs::write(shared.path().join("config/app.env"), "K=good\n").unwrap();
    let r = TestRepo::new();
    r.write(".gitignore", ".env\nconfig\n").write("app.py", "V = 1\n");
    r.write("forge-rollback.toml", "[env]\nfiles = [\".env\", \"config/app.env\"]\n");
    r.commit_all("release v1");
    r.symlink(".env", shared.path().join(".env")).symlink("config", shared.path().join("config"));

    let out = fr(&r, &["known-good", "mark", "HEAD"]);
    out.ok();
    assert!(out.stdout.contains("note: `.env` is a symlink to `"), "{}", out.stdout);
    assert!(out.stdout.contains("note: `config/app.env` not recorded: `config` is a symlink"), "{}", out.stdout);
    assert!(!out.stdout.contains("no env file exists"), "{}", out.stdout);

    // Only the link's content is recorded.
    let j = fr(&r, &["backups", "list", "--json"]).json();
    assert_eq!(j.as_array().unwrap().len(), 1, "{j:#}");
    assert_eq!(j[0]["entries"], 1, "{j:#}");
}

#[test]
fn a_folder_where_an_env_file_goes_refuses_a_full_run_before_anything_changes() {
    let r = marked_v1_then_v2(|r| {
        r.write(".env", "K=1\n");
    });
    r.remove(".env").write(".env/local", "X=1\n");
    let head = r.head();

    let a = fr(&r, &["assess", "--json"]).json();
    let risks = a["risks"].as_array().unwrap();
    assert!(
        risks.iter().any(|k| k["code"] == "env_not_restorable" && k["message"].as_str().unwrap().contains("`.env` is a folder")),
        "{a:#}"
    );
    let out = fr(&r, &["run", "--full", "--yes"]);
    out.code(4);
    assert!(out.stderr.contains("env file `.env` is a folder that is not empty"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: move the folder `.env` away"), "{}", out.stderr);
    assert_eq!(r.head(), head, "nothing changed");
    assert!(fr(&r, &["runs", "list", "--json"]).json().as_array().unwrap().is_empty());
}

#[test]
fn a_damaged_env_record_of_the_target_blocks_only_full_runs_naming_it() {
    let r = marked_v1_then_v2(|r| {
        r.write(".env", "API_KEY=one\n");
    });
    r.write(".env", "API_KEY=two\n");
    let [record] = env_manifests(&r).try_into().unwrap();
    let blob = blob_file(&r, &record);
    let mut perms = std::fs::metadata(&blob).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&blob, perms).unwrap();
    std::fs::write(&blob, "corrupt\n").unwrap();
    let id = id_of(&record);
    let head = r.head();

    let a = fr(&r, &["assess", "--json"]).json();
    let risk = a["risks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["code"] == "env_not_restorable")
        .unwrap_or_else(|| panic!("{a:#}"));
    assert!(risk["message"].as_str().unwrap().contains(&format!("the env record {id}")), "{risk}");
    let text = fr(&r, &["assess"]);
    text.ok();
    assert!(text.stdout.contains(&format!("  cannot be restored: the env record {id}")), "{}", text.stdout);
    assert!(!text.stdout.contains("same keys and values as recorded"), "{}", text.stdout);
    fr(&r, &["plan", "--fast"]).ok();

    let full = fr(&r, &["run", "--full", "--yes"]);
    full.code(4);
    assert!(full.stderr.contains(&format!("the env record {id}")), "{}", full.stderr);
    assert!(full.stderr.contains("hint:") && full.stderr.contains("backups verify"), "{}", full.stderr);
    assert_eq!(r.head(), head, "nothing changed");
    assert_eq!(r.read(".env"), b"API_KEY=two\n");

    fr(&r, &["run", "--fast", "--yes"]).ok();
    assert_ne!(r.head(), head, "the code-only rollback ran");
}

#[test]
fn a_torn_env_record_of_another_commit_is_listed_damaged_and_blocks_no_code_rollback() {
    let r = marked_v1_then_v2(|r| {
        r.write(".env", "K=1\n");
    });
    r.write(".env", "K=2\n");
    // Ids carry whole seconds: v2's record sorts after v1's.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    r.commit_all("registry 2");
    r.write("app.py", "V = 3\n");
    r.commit_all("release v3");
    let [_, v2] = env_manifests(&r).try_into().unwrap();
    let text = std::fs::read(&v2).unwrap();
    std::fs::write(&v2, &text[..50]).unwrap();
    let torn = id_of(&v2);

    let list = fr(&r, &["backups", "list"]);
    list.ok();
    assert!(list.stdout.contains(&format!("{torn}  DAMAGED: ")), "{}", list.stdout);
    let j = fr(&r, &["backups", "list", "--json"]).json();
    let row = j.as_array().unwrap().iter().find(|s| s["id"] == torn.as_str()).unwrap();
    assert!(row["damaged"].as_str().unwrap().contains("is invalid"), "{row}");
    assert_eq!(row["label"], "env");

    fr(&r, &["assess", "--target", "v1"]).ok();
    // The torn record may be v1's newest: a full rollback would not know which env to restore.
    let full = fr(&r, &["run", "--full", "--yes", "--target", "v1"]);
    full.code(4);
    assert!(full.stderr.contains(&format!("env record {torn} cannot be read")), "{}", full.stderr);
    fr(&r, &["run", "--fast", "--yes", "--target", "v1"]).ok();
    // Never pruned: what cannot be read may be a newer version's, still needed.
    let pruned = fr(&r, &["backups", "prune", "--keep", "0"]);
    pruned.code(1);
    assert!(pruned.stderr.contains(torn.as_str()), "{}", pruned.stderr);
    assert!(v2.exists(), "the damaged manifest is kept");
}

#[test]
fn prune_keep_counts_run_backups_not_env_records() {
    let r = marked_v1_then_v2(|r| {
        r.write(".env", "API_KEY=one\n");
    });
    r.write(".env", "API_KEY=two\n");
    let out = fr(&r, &["run", "--full", "--yes", "--json"]);
    out.ok();
    let run = out.json()["run_id"].as_str().unwrap().to_owned();
    // The routine mark of the release now running records another env record, newer than
    // the run's backup.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fr(&r, &["known-good", "mark", "HEAD"]).ok();

    let pruned = fr(&r, &["backups", "prune", "--keep", "1", "--json"]);
    pruned.ok();
    assert_eq!(pruned.json()["runs_no_longer_undoable"], serde_json::json!([]), "{}", pruned.stdout);
    fr(&r, &["undo", &run, "--yes"]).ok();
    assert_eq!(r.read(".env"), b"API_KEY=two\n");
}

#[test]
fn resume_after_a_crash_inside_restore_env_keeps_an_env_edit_for_undo() {
    let r = marked_v1_then_v2(|r| {
        r.write(".env", "API_KEY=one\n");
    });
    r.write(".env", "API_KEY=two\n");
    let out = fr_env(&r, &["run", "--full", "--yes"], &[("FORGE_ROLLBACK_FAILPOINT", "after:restore_env")]);
    assert_eq!(out.code, None, "killed\n{}", out.stderr);
    let run = fr(&r, &["runs", "list", "--json"]).json()[0]["run_id"].as_str().unwrap().to_owned();
    assert_eq!(r.read(".env"), b"API_KEY=one\n", "the restore was done when the crash came");
    // The operator edits the env before resuming.
    let edited = "API_KEY=one\nOPERATOR_EDIT=keep-me\n";
    r.write(".env", edited);

    let resumed = fr(&r, &["resume", &run, "--yes"]);
    resumed.ok();
    assert!(
        resumed.stderr.contains("Captured the work tree again before going on (resume): 1 path(s)"),
        "{}",
        resumed.stderr
    );
    assert_eq!(r.read(".env"), b"API_KEY=one\n", "the resume restores the record");
    fr(&r, &["undo", &run, "--yes"]).ok();
    assert_eq!(r.read(".env"), edited.as_bytes(), "the edit, the latest content before the resume, comes back");
}

#[test]
fn an_env_folder_turned_into_a_symlink_since_the_mark_is_left_as_it_is_and_said() {
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("app.env"), "K=shared\n").unwrap();
    let r = TestRepo::new();
    r.write(".gitignore", "config\n").write("app.py", "V = 1\n");
    r.write("forge-rollback.toml", "[env]\nfiles = [\"config/app.env\"]\n");
    r.commit_all("release v1");
    r.git(&["tag", "v1"]);
    r.write("config/app.env", "K=good\n");
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    r.commit_all("registry");
    r.write("app.py", "V = 2\n");
    r.commit_all("release v2");
    // The deploy tool links the folder into a shared one since.
    std::fs::remove_dir_all(r.path().join("config")).unwrap();
    r.symlink("config", shared.path());

    let a = fr(&r, &["assess", "--json"]).json();
    assert!(
        a["risks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["message"].as_str().unwrap().contains("is below `config`, a symlink")),
        "{a:#}"
    );
    let out = fr(&r, &["run", "--full", "--yes"]);
    out.ok();
    assert!(
        out.stderr.contains("env file `config/app.env` left as it is, not restored: `config` is a symlink"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Env files restored"), "{}", out.stderr);
    assert_eq!(std::fs::read(shared.path().join("app.env")).unwrap(), b"K=shared\n", "never written through");
}

#[test]
fn a_record_holding_a_link_as_a_link_restores_nothing_and_says_so() {
    let (_shared, shared_env, r) = linked_env_marked_then_broken();
    // A record as versions before links were followed made it: the link, not its content.
    let [manifest] = env_manifests(&r).try_into().unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let entry = &mut m["entries"][0];
    let owner = entry["owner"].clone();
    *entry = serde_json::json!({
        "path": ".env", "origin": "ignored", "type": "symlink",
        "target": shared_env.to_str().unwrap(), "owner": owner,
    });
    let mut perms = std::fs::metadata(&manifest).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&manifest, perms).unwrap();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();

    let out = fr(&r, &["run", "--full", "--yes"]);
    out.ok();
    assert!(
        out.stderr.contains("env file `.env` left as it is, not restored: the record holds the symlink"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("[WARN] no env file restored"), "{}", out.stderr);
    assert!(!out.stderr.contains("Env files restored"), "{}", out.stderr);
}

/// RES-ENV-DIR-UMASK: the recorded `config/app.env` (its folder gone in the broken release)
/// is written back by a full run that runs under `umask 000` (a service's `UMask=0000`). Its
/// folder was made `0777`: anyone could swap the secrets file by a rename. It is never writable
/// by group or others now.
#[test]
fn a_folder_made_for_a_restored_env_file_is_not_writable_by_others_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    let r = TestRepo::new();
    r.write(".gitignore", "config/\n").write("app.py", "V = 1\n");
    r.write("forge-rollback.toml", "[env]\nfiles = [\"config/app.env\"]\n");
    r.commit_all("release v1");
    r.git(&["tag", "v1"]);
    r.write("config/app.env", "DB_PASSWORD=s3cret\n");
    std::fs::set_permissions(r.path().join("config"), std::fs::Permissions::from_mode(0o750)).unwrap();
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    r.commit_all("registry");
    r.write("app.py", "V = 2\n");
    r.commit_all("release v2");
    std::fs::remove_dir_all(r.path().join("config")).unwrap();

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_forge-rollback"));
    rollback_testkit::clean_git_env(&mut cmd);
    cmd.arg("-C").arg(r.path()).args(["run", "--full", "--yes", "--target", "v1"]);
    // SAFETY: `umask` is async-signal-safe and touches only the child.
    #[allow(unsafe_code)]
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::umask(0);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(r.path().join("config/app.env")).unwrap(), "DB_PASSWORD=s3cret\n");
    let mode = std::fs::metadata(r.path().join("config")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o022, 0, "config/ is {mode:o}: writable by group or others");
}
