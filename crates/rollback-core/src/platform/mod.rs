//! Platform adapters: [`Deployer`]s that promote a release a PaaS keeps, chosen by
//! `[deploy] strategy` (`railway`, `render`, `heroku`, `fly`). Each speaks its platform's public API through [`api`], which
//! reads the token from the environment variable the config names, waits out a `429` for as
//! long as `Retry-After` says (bounded), and names the platform's own error message.

pub mod api;
pub mod fly;
pub mod heroku;
pub mod kubernetes;
pub mod railway;
pub mod render;

use std::sync::Arc;

use crate::deploy::{DeployConfig, DeployStrategy};
use crate::production::Deployer;

/// The adapter `[deploy]` asks for, if its strategy is a platform.
pub fn from_config(config: &DeployConfig) -> Option<Arc<dyn Deployer>> {
    match config.strategy {
        DeployStrategy::Railway => Some(Arc::new(railway::Railway::from_config(config))),
        DeployStrategy::Render => Some(Arc::new(render::Render::from_config(config))),
        DeployStrategy::Heroku => Some(Arc::new(heroku::Heroku::from_config(config))),
        DeployStrategy::Fly => Some(Arc::new(fly::Fly::from_config(config))),
        DeployStrategy::Kubernetes => Some(Arc::new(kubernetes::Kubernetes::from_config(config))),
        DeployStrategy::None | DeployStrategy::Push | DeployStrategy::RevertCommit => None,
    }
}
