//! Where the cluster is and who we are: a kubeconfig file (YAML) or, inside a pod, the
//! service account.
//!
//! Order: `[deploy] kubeconfig`; else `$KUBECONFIG` (a `:`-separated list, merged as kubectl
//! merges it: the first file to set a value wins); else, when `KUBERNETES_SERVICE_HOST` is set,
//! the pod's service account (`https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the
//! token, CA and namespace files under [`SERVICE_ACCOUNT_DIR`]); else `~/.kube/config`.
//!
//! A user may authenticate with `token`, `tokenFile`, or a client certificate and key
//! (`client-certificate(-data)`, `client-key(-data)`); a cluster's CA is
//! `certificate-authority(-data)`, or `insecure-skip-tls-verify: true`. Relative paths are read
//! from the kubeconfig's folder. `exec` credential plugins and `auth-provider`s are refused
//! with a message saying what to do instead: running another program to get a token is not
//! something a rollback in an outage should depend on. Tokens and keys are [`Secret`]s.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::{Secret, decode_base64};

/// The service account's files inside a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How to reach the API server.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The API server's URL (no trailing `/`).
    pub server: String,
    /// A bearer token.
    pub token: Option<Secret>,
    /// The CA bundle (PEM) that signs the server's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate followed by its key (PEM); the key is a secret.
    pub identity_pem: Option<Secret>,
    /// `insecure-skip-tls-verify`.
    pub insecure: bool,
    /// The context's (or service account's) namespace.
    pub namespace: Option<String>,
    /// Where these came from, for messages ("kubeconfig ~/.kube/config, context prod").
    pub source: String,
}

/// Why the credentials could not be read: a message and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
    /// The namespace of the context chosen, when the error came after it was found (for
    /// messages that name the workload).
    pub namespace: Option<String>,
}

fn err(message: impl Into<String>, hint: impl Into<String>) -> ConfigError {
    ConfigError { message: message.into(), hint: hint.into(), namespace: None }
}

/// A YAML parser's message without the values it quotes: a value in the wrong place may be
/// a token (`user: <token>` for `user: {token: <token>}`), which is never printed. What is
/// wrong, and where (the key's path, the line and column), stays.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…");
            }
            quoted = !quoted;
            if !quoted {
                out.push('"');
            }
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// What [`load`] reads besides files: the environment and the keys of `[deploy]`.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// `[deploy] kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `[deploy] context`.
    pub context: Option<String>,
    /// `[deploy] api_url`: replaces the server.
    pub api_url: Option<String>,
    /// `$KUBECONFIG`.
    pub kubeconfig_env: Option<String>,
    /// `$KUBERNETES_SERVICE_HOST` and `$KUBERNETES_SERVICE_PORT`.
    pub service_host: Option<(String, Option<String>)>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// The service account's folder ([`SERVICE_ACCOUNT_DIR`] in a pod).
    pub service_account_dir: PathBuf,
}

impl Sources {
    /// The keys of `[deploy]` and this process's environment.
    pub fn from_env(kubeconfig: Option<PathBuf>, context: Option<String>, api_url: Option<String>) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self {
            kubeconfig,
            context,
            api_url,
            kubeconfig_env: var("KUBECONFIG"),
            service_host: var("KUBERNETES_SERVICE_HOST").map(|h| (h, var("KUBERNETES_SERVICE_PORT"))),
            home: var("HOME").map(PathBuf::from),
            service_account_dir: PathBuf::from(SERVICE_ACCOUNT_DIR),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct Kubeconfig {
    #[serde(default, rename = "current-context")]
    current_context: Option<String>,
    #[serde(default)]
    clusters: Option<Vec<Named<Cluster>>>,
    #[serde(default)]
    users: Option<Vec<Named<User>>>,
    #[serde(default)]
    contexts: Option<Vec<Named<Context>>>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    item: Option<T>,
}

#[derive(Debug, Default, Deserialize)]
struct Cluster {
    server: Option<String>,
    #[serde(rename = "certificate-authority")]
    ca: Option<PathBuf>,
    #[serde(rename = "certificate-authority-data")]
    ca_data: Option<String>,
    #[serde(rename = "insecure-skip-tls-verify", default)]
    insecure: bool,
}

#[derive(Debug, Default, Deserialize)]
struct User {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
    #[serde(rename = "client-certificate")]
    cert: Option<PathBuf>,
    #[serde(rename = "client-certificate-data")]
    cert_data: Option<String>,
    #[serde(rename = "client-key")]
    key: Option<PathBuf>,
    #[serde(rename = "client-key-data")]
    key_data: Option<String>,
    exec: Option<serde_norway::Value>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<serde_norway::Value>,
    username: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Context {
    cluster: Option<String>,
    user: Option<String>,
    namespace: Option<String>,
}

/// One kubeconfig file read, with the folder its relative paths are read from.
struct File {
    path: PathBuf,
    config: Kubeconfig,
}

/// The credentials `sources` lead to.
pub fn load(sources: &Sources) -> Result<Credentials, ConfigError> {
    let mut creds = if let Some(path) = &sources.kubeconfig {
        from_files(std::slice::from_ref(path), sources, true)?
    } else if let Some(list) = &sources.kubeconfig_env {
        let paths: Vec<PathBuf> = std::env::split_paths(list).filter(|p| !p.as_os_str().is_empty()).collect();
        from_files(&paths, sources, false)?
    } else if let Some((host, port)) = &sources.service_host {
        in_cluster(host, port.as_deref(), &sources.service_account_dir)?
    } else if let Some(home) = &sources.home {
        from_files(&[home.join(".kube").join("config")], sources, true)?
    } else {
        return Err(err(
            "no kubeconfig: `[deploy] kubeconfig`, KUBECONFIG and HOME are all unset, and this is not a pod",
            "set `kubeconfig` in `[deploy]` or export KUBECONFIG",
        ));
    };
    if let Some(url) = &sources.api_url {
        url.trim_end_matches('/').clone_into(&mut creds.server);
    }
    Ok(creds)
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        err(format!("cannot read the {what} {}: {e}", path.display()), "check the path and its permissions")
    })
}

fn from_files(paths: &[PathBuf], sources: &Sources, must_exist: bool) -> Result<Credentials, ConfigError> {
    let mut files = Vec::new();
    for path in paths {
        if !must_exist && !path.exists() {
            continue;
        }
        let text = read(path, "kubeconfig")?;
        let config: Kubeconfig = if text.iter().all(u8::is_ascii_whitespace) {
            Kubeconfig::default()
        } else {
            serde_norway::from_slice(&text).map_err(|e| {
                err(
                    format!(
                        "kubeconfig {} is not a valid kubeconfig: {}",
                        path.display(),
                        without_values(&e.to_string())
                    ),
                    "fix the file, or point `[deploy] kubeconfig` at another",
                )
            })?
        };
        files.push(File { path: path.clone(), config });
    }
    let shown = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
    if files.is_empty() {
        return Err(err(
            format!("no kubeconfig file exists at {shown}"),
            "set `kubeconfig` in `[deploy]` or KUBECONFIG",
        ));
    }
    let context_name = sources
        .context
        .clone()
        .or_else(|| files.iter().find_map(|f| f.config.current_context.clone().filter(|c| !c.is_empty())))
        .ok_or_else(|| {
            err(format!("kubeconfig {shown} has no current-context"), "name one with `context` in `[deploy]`")
        })?;
    let (_, context) = find(&files, |c| c.contexts.as_deref(), &context_name).ok_or_else(|| {
        err(
            format!("kubeconfig {shown} has no context `{context_name}`"),
            "check `context` in `[deploy]` (`kubectl config get-contexts` lists them)",
        )
    })?;
    let namespace = context.namespace.clone().filter(|n| !n.is_empty());
    with_context(&files, &shown, &context_name, context).map_err(|e| ConfigError { namespace, ..e })
}

/// The credentials of `context` (named `context_name`) in `files` (`shown`, for messages).
fn with_context(
    files: &[File],
    shown: &str,
    context_name: &str,
    context: &Context,
) -> Result<Credentials, ConfigError> {
    let cluster_name = context.cluster.clone().unwrap_or_default();
    let (cluster_file, cluster) = find(files, |c| c.clusters.as_deref(), &cluster_name).ok_or_else(|| {
        err(
            format!(
                "kubeconfig {shown}: context `{context_name}` names cluster `{cluster_name}`, which it does not define"
            ),
            "fix the kubeconfig",
        )
    })?;
    let user_name = context.user.clone().unwrap_or_default();
    let user = if user_name.is_empty() {
        None
    } else {
        Some(find(files, |c| c.users.as_deref(), &user_name).ok_or_else(|| {
            err(
                format!(
                    "kubeconfig {shown}: context `{context_name}` names user `{user_name}`, which it does not define"
                ),
                "fix the kubeconfig",
            )
        })?)
    };
    let server = cluster.server.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
        err(
            format!("kubeconfig {shown}: cluster `{cluster_name}` has no server"),
            "fix the kubeconfig, or set `api_url` in `[deploy]`",
        )
    })?;
    let ca_pem = match (&cluster.ca_data, &cluster.ca) {
        (Some(data), _) => Some(base64(data, "certificate-authority-data")?),
        (None, Some(path)) => Some(read(&relative(cluster_file, path), "certificate authority")?),
        (None, None) => None,
    };
    let mut creds = Credentials {
        server: server.trim_end_matches('/').to_owned(),
        token: None,
        ca_pem,
        identity_pem: None,
        insecure: cluster.insecure,
        namespace: context.namespace.clone().filter(|n| !n.is_empty()),
        source: format!("kubeconfig {shown}, context {context_name}"),
    };
    if let Some((user_file, user)) = user {
        if user.exec.is_some() || user.auth_provider.is_some() {
            let which = if user.exec.is_some() { "an `exec` credential plugin" } else { "an `auth-provider`" };
            return Err(err(
                format!(
                    "kubeconfig {shown}: user `{user_name}` authenticates with {which}, which forge-rollback does not run"
                ),
                "give it a user with a `token`, `tokenFile` or client certificate (a service account token made with `kubectl create token` works), in a kubeconfig named by `[deploy] kubeconfig`",
            ));
        }
        if user.username.is_some() {
            return Err(err(
                format!("kubeconfig {shown}: user `{user_name}` uses basic auth, which Kubernetes removed in 1.19"),
                "use a token or a client certificate",
            ));
        }
        creds.token = match (&user.token, &user.token_file) {
            (Some(t), _) if !t.trim().is_empty() => Some(Secret::new(t.trim())),
            (_, Some(path)) => {
                let t = read(&relative(user_file, path), "token file")?;
                Some(Secret::new(String::from_utf8_lossy(&t).trim()))
            }
            _ => None,
        };
        let cert = match (&user.cert_data, &user.cert) {
            (Some(d), _) => Some(base64(d, "client-certificate-data")?),
            (None, Some(p)) => Some(read(&relative(user_file, p), "client certificate")?),
            _ => None,
        };
        let key = match (&user.key_data, &user.key) {
            (Some(d), _) => Some(base64(d, "client-key-data")?),
            (None, Some(p)) => Some(read(&relative(user_file, p), "client key")?),
            _ => None,
        };
        match (cert, key) {
            (Some(mut c), Some(k)) => {
                if !c.ends_with(b"\n") {
                    c.push(b'\n');
                }
                c.extend_from_slice(&k);
                creds.identity_pem = Some(Secret::new(String::from_utf8_lossy(&c)));
            }
            (None, None) => {}
            _ => {
                return Err(err(
                    format!("kubeconfig {shown}: user `{user_name}` has a client certificate or key without the other"),
                    "give both `client-certificate(-data)` and `client-key(-data)`",
                ));
            }
        }
    }
    Ok(creds)
}

/// The first entry called `name` in the files, in order, and the file it is in.
fn find<'a, T>(
    files: &'a [File],
    list: impl Fn(&'a Kubeconfig) -> Option<&'a [Named<T>]>,
    name: &str,
) -> Option<(&'a File, &'a T)> {
    files.iter().find_map(|f| {
        list(&f.config)?.iter().find(|n| n.name == name).and_then(|n| n.item.as_ref()).map(|item| (f, item))
    })
}

fn relative(file: &File, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_owned() } else { file.path.parent().unwrap_or(Path::new(".")).join(path) }
}

fn base64(data: &str, key: &str) -> Result<Vec<u8>, ConfigError> {
    decode_base64(data).ok_or_else(|| err(format!("kubeconfig: `{key}` is not base64"), "fix the kubeconfig"))
}

fn in_cluster(host: &str, port: Option<&str>, dir: &Path) -> Result<Credentials, ConfigError> {
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() };
    let token = read(&dir.join("token"), "service account token")?;
    let ca = dir.join("ca.crt");
    let namespace = std::fs::read_to_string(dir.join("namespace")).ok().map(|n| n.trim().to_owned());
    Ok(Credentials {
        server: format!("https://{host}:{}", port.unwrap_or("443")),
        token: Some(Secret::new(String::from_utf8_lossy(&token).trim())),
        ca_pem: Some(read(&ca, "service account CA")?),
        identity_pem: None,
        insecure: false,
        namespace: namespace.filter(|n| !n.is_empty()),
        source: format!("the pod's service account ({})", dir.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVs\nbG8h").unwrap(), b"hello!");
        assert!(decode_base64("a$b").is_none());
    }
}
