//! A production target in memory ([`MemDeployer`]) for tests of the engine's promote, resume
//! and undo paths, and the [`Deployer`] conformance suite a platform adapter runs against its
//! own target (a test server that speaks the platform's API, or a sandbox project).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::Case;
use crate::production::{Deployer, Error, Release, Result};
use crate::rt;
use crate::vcs::CommitId;

/// Which call of [`MemDeployer`] fails next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeployFail {
    /// `rollback` fails before anything changes.
    Rollback,
    /// `wait_live` times out, after `rollback` went through.
    WaitLive,
}

/// A platform in memory: its releases (newest last) and the live one.
#[derive(Debug)]
pub struct MemDeployer {
    name: String,
    releases: Vec<Release>,
    live: Mutex<String>,
    fail: Mutex<Option<DeployFail>>,
    promoted: Mutex<Vec<String>>,
}

impl MemDeployer {
    /// A platform named `name` with one release per `(id, commit)`; the last one is live.
    pub fn new(name: &str, releases: &[(&str, &CommitId)]) -> Self {
        let releases: Vec<Release> = releases
            .iter()
            .map(|(id, c)| Release {
                id: (*id).to_owned(),
                commit: Some((*c).clone()),
                summary: format!("release {id}"),
            })
            .collect();
        let live = releases.last().map(|r| r.id.clone()).unwrap_or_default();
        Self {
            name: name.to_owned(),
            releases,
            live: Mutex::new(live),
            fail: Mutex::new(None),
            promoted: Mutex::default(),
        }
    }

    /// Arms a failure of the next matching call.
    pub fn fail_on(&self, f: DeployFail) {
        *self.fail.lock().expect("lock") = Some(f);
    }

    /// The live release's id.
    pub fn live(&self) -> String {
        self.live.lock().expect("lock").clone()
    }

    /// Every release `rollback` made live, in order.
    pub fn promoted(&self) -> Vec<String> {
        self.promoted.lock().expect("lock").clone()
    }

    fn take_fail(&self, f: DeployFail) -> bool {
        let mut armed = self.fail.lock().expect("lock");
        if *armed == Some(f) {
            *armed = None;
            return true;
        }
        false
    }
}

#[async_trait]
impl Deployer for MemDeployer {
    fn describe(&self) -> String {
        format!("memory platform {}", self.name)
    }

    async fn current(&self) -> Result<Release> {
        let live = self.live();
        Ok(self.releases.iter().find(|r| r.id == live).cloned().expect("the live release exists"))
    }

    async fn find(&self, commit: &CommitId) -> Result<Option<Release>> {
        Ok(self.releases.iter().rev().find(|r| r.commit.as_ref() == Some(commit)).cloned())
    }

    async fn rollback(&self, to: &Release) -> Result<()> {
        if self.take_fail(DeployFail::Rollback) {
            return Err(Error::Platform { target: self.describe(), message: "injected failure".into(), hint: None });
        }
        if !self.releases.iter().any(|r| r.id == to.id) {
            return Err(Error::Platform {
                target: self.describe(),
                message: format!("no release {}", to.id),
                hint: None,
            });
        }
        self.live.lock().expect("lock").clone_from(&to.id);
        self.promoted.lock().expect("lock").push(to.id.clone());
        Ok(())
    }

    async fn wait_live(&self, release: &Release, timeout: Duration) -> Result<()> {
        if self.take_fail(DeployFail::WaitLive) || self.live() != release.id {
            return Err(Error::NotLive {
                target: self.describe(),
                release: release.id.clone(),
                seconds: timeout.as_secs(),
                last_error: None,
            });
        }
        Ok(())
    }
}

/// A target under test, and commits it holds a release of (two or more, different).
pub struct DeployerUnderTest {
    /// The target.
    pub deployer: Box<dyn Deployer>,
    /// Commits the target has built; the suite promotes their releases.
    pub built: Vec<CommitId>,
}

/// Makes the target under test; each case calls it once. The suite promotes releases on it.
pub type MakeDeployer = dyn Fn() -> DeployerUnderTest;

/// Every case, in the order [`run_all`] runs them.
pub const CASES: &[Case<MakeDeployer>] = &[
    Case { name: "the_live_release_is_found_by_its_commit", run: the_live_release_is_found_by_its_commit },
    Case { name: "a_commit_never_built_has_no_release", run: a_commit_never_built_has_no_release },
    Case { name: "rollback_makes_a_release_live_and_back", run: rollback_makes_a_release_live_and_back },
    Case { name: "rollback_is_safe_to_repeat", run: rollback_is_safe_to_repeat },
];

/// Runs every case, then panics naming each that failed.
pub fn run_all(make: &MakeDeployer) {
    super::run_cases("Deployer", CASES, make);
}

/// `current()` names a release with its commit, and `find(that commit)` returns it: the
/// engine plans and undoes by commit.
pub fn the_live_release_is_found_by_its_commit(make: &MakeDeployer) {
    let d = make().deployer;
    let live = rt::block_on(d.current()).expect("current");
    let commit = live.commit.clone().expect("the live release names its commit");
    let found = rt::block_on(d.find(&commit)).expect("find").expect("the live release's commit has a release");
    assert_eq!(found.commit.as_ref(), Some(&commit));
    assert!(!d.describe().is_empty(), "describe() names the target");
}

/// A commit the platform never built has no release (the engine refuses, it does not guess).
pub fn a_commit_never_built_has_no_release(make: &MakeDeployer) {
    let d = make().deployer;
    let never = CommitId::new("0123456789abcdef0123456789abcdef01234567").expect("a commit id");
    assert_eq!(rt::block_on(d.find(&never)).expect("find"), None);
}

/// The release of a built commit other than the live one's.
fn another_release(t: &DeployerUnderTest, live: &Release) -> Release {
    let c = t
        .built
        .iter()
        .find(|c| live.commit.as_ref() != Some(*c))
        .expect("the suite needs a release built from a second commit");
    rt::block_on(t.deployer.find(c)).expect("find").unwrap_or_else(|| panic!("no release of built commit {c}"))
}

/// `rollback(to)` then `wait_live(to)` makes `to` the live release; promoting the earlier one
/// puts it back (what an undo does).
pub fn rollback_makes_a_release_live_and_back(make: &MakeDeployer) {
    let t = make();
    let d = t.deployer.as_ref();
    let before = rt::block_on(d.current()).expect("current");
    let to = another_release(&t, &before);
    rt::block_on(d.rollback(&to)).expect("rollback");
    rt::block_on(d.wait_live(&to, Duration::from_secs(60))).expect("wait_live");
    let live = rt::block_on(d.current()).expect("current");
    assert!(d.serves(&live, &to), "{live} serves {to}");
    assert!(!d.serves(&live, &before), "{live} no longer serves {before}");
    rt::block_on(d.rollback(&before)).expect("rollback to the earlier release");
    rt::block_on(d.wait_live(&before, Duration::from_secs(60))).expect("wait_live");
    let live = rt::block_on(d.current()).expect("current");
    assert!(d.serves(&live, &before), "{live} serves {before} again");
}

/// A resumed run may promote a release that is live already: that succeeds and changes nothing.
pub fn rollback_is_safe_to_repeat(make: &MakeDeployer) {
    let d = make().deployer;
    let live = rt::block_on(d.current()).expect("current");
    rt::block_on(d.rollback(&live)).expect("promoting the live release again");
    rt::block_on(d.wait_live(&live, Duration::from_secs(60))).expect("wait_live");
    assert_eq!(rt::block_on(d.current()).expect("current").id, live.id, "nothing new was deployed");
}
