//! Embedding the engine in a Rust program: open a repository with a custom service verifier
//! and an observer, roll back to a known-good release, check the services, then undo.
//!
//! `cargo run -p rollback-core --example embed` builds a throwaway repository in a temp folder
//! (two releases; the second one broken), so it never touches a real checkout.
#![allow(clippy::print_stdout)] // an example prints what it does

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rollback_core::event::{Event, Observer};
use rollback_core::prompt::AutoConfirm;
use rollback_core::time::Timestamp;
use rollback_core::verify::{CheckResult, ServiceVerifier, VerificationReport};
use rollback_core::{Level, Rollback, RunOptions, RunStatus};

/// A verifier with no network: the "service" is healthy when its code says it is. A real one
/// would call the app, a load balancer or a metrics store.
struct CodeSaysHealthy {
    app: PathBuf,
}

#[async_trait]
impl ServiceVerifier for CodeSaysHealthy {
    async fn verify(&self, _only: Option<&[String]>) -> VerificationReport {
        let started_at = Timestamp::now();
        let code = std::fs::read_to_string(&self.app).unwrap_or_default();
        let passed = code.contains("healthy");
        let check = CheckResult {
            name: "app".into(),
            kind: "custom".into(),
            passed,
            status: if passed { "passed" } else { "failed" }.into(),
            latency_ms: 0,
            reason: if passed { "the app reports healthy".into() } else { format!("the app says {code:?}") },
            attempts: 1,
            metric: None,
        };
        VerificationReport { passed, started_at, duration_ms: 0, checks: vec![check] }
    }

    fn check_names(&self) -> Vec<String> {
        vec!["app".into()]
    }
}

/// Collects the step names as they finish.
#[derive(Default)]
struct Steps(Mutex<Vec<String>>);

impl Observer for Steps {
    fn event(&self, event: &Event) {
        if let Event::StepFinished { step, ok, .. } = event {
            self.0.lock().unwrap().push(format!("{step}{}", if *ok { "" } else { " (failed)" }));
        }
    }
}

fn commit(repo: &git2::Repository, file: &Path, text: &str, message: &str) -> Result<git2::Oid, git2::Error> {
    std::fs::write(repo.workdir().unwrap().join(file), text).map_err(|e| git2::Error::from_str(&e.to_string()))?;
    let mut index = repo.index()?;
    index.add_path(file)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = git2::Signature::now("Example", "example@invalid")?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A repository with a good release v1 and a broken v2 on top.
    let dir = tempfile::tempdir()?;
    let repo = git2::Repository::init(dir.path())?;
    let v1 = commit(&repo, Path::new("app.py"), "print('healthy')\n", "v1")?;
    repo.tag_lightweight("v1", &repo.find_object(v1, None)?, false)?;
    commit(&repo, Path::new("app.py"), "raise SystemExit('broken')\n", "v2: broken")?;

    let rb =
        Rollback::builder(dir.path()).verifier(Arc::new(CodeSaysHealthy { app: dir.path().join("app.py") })).build()?;
    let steps = Steps::default();

    let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
    let run = rb.run(&opts, &AutoConfirm, &steps)?;
    println!("rollback {}: {}", run.run_id.as_deref().unwrap_or("-"), run.status);
    println!("  steps: {}", steps.0.lock().unwrap().join(", "));
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert!(run.verification.as_ref().is_some_and(|v| v.passed), "v1 verifies");
    assert_eq!(std::fs::read_to_string(dir.path().join("app.py"))?, "print('healthy')\n");

    steps.0.lock().unwrap().clear();
    let undo = rb.undo(run.run_id.as_deref().unwrap_or_default(), &AutoConfirm, &steps)?;
    println!("undo {}: {}", undo.run_id.as_deref().unwrap_or("-"), undo.status);
    println!("  steps: {}", steps.0.lock().unwrap().join(", "));
    // The undo verifies too, and the broken release fails: that is the honest answer.
    assert_eq!(undo.status, RunStatus::VerificationFailed);
    assert_eq!(std::fs::read_to_string(dir.path().join("app.py"))?, "raise SystemExit('broken')\n");
    println!("the work tree is back on v2, exactly as before the rollback");
    Ok(())
}
