//! Fake platform APIs on `127.0.0.1`, speaking each platform's documented API (request shapes,
//! auth headers, pagination, error bodies) and keeping state between requests, so an adapter
//! can be run end to end and the requests it sent asserted afterwards. Failures on command: a
//! rollback the platform refuses, a release that never goes live or ends failed, `429 Too
//! Many Requests` with `Retry-After`.

use std::sync::{Mutex, MutexGuard, PoisonError};

mod fly;
mod heroku;
mod kubernetes;
mod railway;
mod render;

pub use fly::{FakeFly, FlyMachine};
pub use heroku::{FakeHeroku, HerokuRelease};
pub use kubernetes::{FakeJob, FakeKubernetes, KubeRevision, kube_template};
pub use railway::{FakeRailway, RailwayDeployment, RailwayToken};
pub use render::{FakeRender, RenderDeploy};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
