//! The secrets of the sections a check does not hold, gathered when the configuration is
//! loaded so that every check's reason is scrubbed of them: a `command` check's program may
//! print `$DATABASE_URL` in its error, a service may quote a deploy token.

use crate::db::DatabaseConfig;
use crate::deploy::{DeployConfig, DeployStrategy};
use crate::notify::NotifyConfig;
use crate::secret::{Secret, Secrets};

/// The database URL (its password with it), the deploy hook and platform token, and every
/// webhook's URL, signing secret, routing key and token: the values written in the
/// configuration and the environment variables named for them.
pub(super) fn of(database: Option<&DatabaseConfig>, deploy: Option<&DeployConfig>, notify: &[NotifyConfig]) -> Secrets {
    let mut out = Secrets::default();
    let mut add = |inline: Option<&Secret>, var: Option<&str>| {
        if let Some(s) = inline {
            out.add(s);
        }
        if let Some(v) = var {
            out.add_env(v);
        }
    };
    if let Some(db) = database {
        add(db.url.as_ref(), db.url_env.as_deref());
    }
    if let Some(d) = deploy {
        add(d.hook_url.as_ref(), d.hook_url_env.as_deref());
        let platform_default = match d.strategy {
            DeployStrategy::Railway => Some(crate::platform::railway::DEFAULT_TOKEN_ENV),
            DeployStrategy::Render => Some(crate::platform::render::DEFAULT_TOKEN_ENV),
            DeployStrategy::Heroku => Some(crate::platform::heroku::DEFAULT_TOKEN_ENV),
            DeployStrategy::Fly => Some(crate::platform::fly::DEFAULT_TOKEN_ENV),
            _ => None,
        };
        add(None, d.token_env.as_deref().or(platform_default));
    }
    for n in notify {
        add(n.url.as_ref(), n.url_env.as_deref());
        add(n.secret.as_ref(), n.secret_env.as_deref());
        add(n.routing_key.as_ref(), n.routing_key_env.as_deref());
        add(n.token.as_ref(), n.token_env.as_deref());
    }
    out
}
