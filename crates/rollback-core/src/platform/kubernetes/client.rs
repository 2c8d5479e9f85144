//! The Kubernetes REST API over HTTPS: the cluster's CA (or none, when the kubeconfig says
//! `insecure-skip-tls-verify`), a bearer token or a client certificate, JSON in and out.
//! A `429` is waited out as `Retry-After` asks (bounded, as [`super::super::api`] does);
//! lists are read page by page (`limit`, then `continue`); a failure names the API server's
//! own `Status` message and reason. The token and key never appear in a message.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::config::Credentials;
use crate::http::{USER_AGENT, describe_error, host_port, install_crypto_provider};
use crate::platform::api::{MAX_RETRIES, MAX_RETRY_AFTER};
use crate::production::{Error, Result};
use crate::secret::redact_in;

/// Longest one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Items asked for per page of a list.
pub const PAGE: u32 = 100;
/// Most pages read of one list.
const MAX_PAGES: u32 = 50;
/// Most bytes of a response read.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A client for one cluster.
#[derive(Debug)]
pub struct Client {
    creds: Credentials,
    http: reqwest::Client,
    /// For messages: "kubernetes deployment prod/api".
    target: String,
}

/// An API server's `Status` (the body of every error answer).
#[derive(Debug, Default, Deserialize)]
struct Status {
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
}

/// A list's `metadata.continue`.
#[derive(Debug, Deserialize)]
struct List<T> {
    items: Vec<T>,
    #[serde(default)]
    metadata: ListMeta,
}

#[derive(Debug, Default, Deserialize)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    next: Option<String>,
}

impl Client {
    /// A client for `creds`; `target` names the workload in messages.
    pub fn new(creds: Credentials, target: String) -> Result<Self> {
        install_crypto_provider();
        let error = |message: String| Error::Platform { target: target.clone(), message, hint: None };
        let mut b = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(0);
        if let Some(ca) = &creds.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(ca)
                .map_err(|e| error(format!("the cluster's CA is not a PEM certificate ({e})")))?;
            b = b.tls_certs_only(certs);
        }
        if let Some(pem) = &creds.identity_pem {
            let id = reqwest::Identity::from_pem(pem.expose().as_bytes())
                .map_err(|_| error("the client certificate or key is not valid PEM".to_owned()))?;
            b = b.identity(id);
        }
        if creds.insecure {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        let http =
            b.build().map_err(|e| error(format!("cannot build the HTTP client: {}", describe_error(e, None))))?;
        Ok(Self { creds, http, target })
    }

    /// The namespace the credentials name, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.creds.namespace.as_deref()
    }

    fn error(&self, message: &str, hint: Option<String>) -> Error {
        let secrets = self.creds.token.iter().chain(&self.creds.identity_pem).map(crate::secret::Secret::expose);
        Error::Platform { target: self.target.clone(), message: redact_in(message, secrets), hint }
    }

    /// An error that may pass when the call is repeated (no answer, or a `5xx`).
    fn unavailable(&self, message: &str) -> Error {
        let secrets = self.creds.token.iter().chain(&self.creds.identity_pem).map(crate::secret::Secret::expose);
        Error::Unavailable { target: self.target.clone(), message: redact_in(message, secrets) }
    }

    /// Sends one request (again after each `429`); the status and body.
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<(&str, String)>) -> Result<(u16, Vec<u8>)> {
        let url = format!("{}{path}", self.creds.server);
        let host = reqwest::Url::parse(&url).map(|u| host_port(&u)).map_err(|e| {
            self.error(&format!("the API server's URL `{}` is not valid ({e})", self.creds.server), None)
        })?;
        let mut attempt = 0;
        loop {
            let mut req =
                self.http.request(method.clone(), &url).header("Accept", "application/json").timeout(REQUEST_TIMEOUT);
            if let Some(t) = &self.creds.token {
                req = req.bearer_auth(t.expose());
            }
            if let Some((content_type, b)) = &body {
                req = req.header("Content-Type", *content_type).body(b.clone());
            }
            let mut resp = req.send().await.map_err(|e| {
                let said = describe_error(e, Some(&host));
                // A certificate the kubeconfig's CA does not sign (an unknown issuer, a name that
                // does not match, an expired one) will not pass by waiting: rustls says
                // "invalid peer certificate" (its `Error::InvalidCertificate`), wrapped by
                // the connector in an I/O error whose cause chain hides the type.
                if said.contains("invalid peer certificate") {
                    return self.error(
                        &format!("the API server's certificate was not accepted: {said}"),
                        Some(format!(
                            "check the cluster's `certificate-authority` / `certificate-authority-data` and `server` in {}",
                            self.creds.source
                        )),
                    );
                }
                self.unavailable(&said)
            })?;
            let status = resp.status().as_u16();
            let wait = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::platform::api::retry_after_value);
            let bytes = crate::http::read_capped(&mut resp, MAX_BODY)
                .await
                .map_err(|e| self.unavailable(&describe_error(e, Some(&host))))?
                .bytes;
            if status != 429 {
                return Ok((status, bytes));
            }
            attempt += 1;
            match wait {
                Some(w) if attempt <= MAX_RETRIES && w <= MAX_RETRY_AFTER => tokio::time::sleep(w).await,
                _ => {
                    let secrets =
                        self.creds.token.iter().chain(&self.creds.identity_pem).map(crate::secret::Secret::expose);
                    return Err(Error::RateLimited {
                        target: self.target.clone(),
                        message: redact_in(&format!("rate limited (429): {}", status_of(&bytes).message), secrets),
                        retry_after: wait,
                        hint: Some("the API server is overloaded; retry later".to_owned()),
                    });
                }
            }
        }
    }

    /// An error for a failed call, naming the server's `Status`.
    fn failed(&self, what: &str, status: u16, body: &[u8]) -> Error {
        let s = status_of(body);
        let said = if s.message.is_empty() {
            String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_owned()
        } else if s.reason.is_empty() {
            s.message
        } else {
            format!("{} ({})", s.message, s.reason)
        };
        let hint = match status {
            401 => Some(format!("the API server did not accept the credentials from {}", self.creds.source)),
            403 => Some(
                "the credentials lack a permission: they need get/list/patch on the workload and its ReplicaSets or ControllerRevisions in this namespace"
                    .to_owned(),
            ),
            _ => None,
        };
        if status >= 500 {
            return self.unavailable(&format!("{what} failed ({status}): {said}"));
        }
        self.error(&format!("{what} failed ({status}): {said}"), hint)
    }

    fn parse<T: DeserializeOwned>(&self, what: &str, body: &[u8]) -> Result<T> {
        serde_json::from_slice(body)
            .map_err(|e| self.error(&format!("{what}: unexpected answer from the API server ({e})"), None))
    }

    /// `GET path`; `None` on `404`.
    pub async fn get<T: DeserializeOwned>(&self, what: &str, path: &str) -> Result<Option<T>> {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await?;
        match status {
            200 => self.parse(what, &body).map(Some),
            404 => Ok(None),
            _ => Err(self.failed(what, status, &body)),
        }
    }

    /// As [`Self::get`], but a `403` or `404` is `Ok(Err(status))`: an object these
    /// credentials may not read or that is not there, which is an answer, not a failure.
    pub async fn get_if_readable<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
    ) -> Result<std::result::Result<T, u16>> {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await?;
        match status {
            200 => self.parse(what, &body).map(Ok),
            403 | 404 => Ok(Err(status)),
            _ => Err(self.failed(what, status, &body)),
        }
    }

    /// Every item of the list at `path` (which may carry a query), page by page.
    pub async fn list<T: DeserializeOwned>(&self, what: &str, path: &str) -> Result<Vec<T>> {
        self.pages(what, path, false).await?.map_err(|status| self.failed(what, status, &[]))
    }

    /// As [`Self::list`], but a first page answered `403` or `404` is `Ok(Err(status))`: a
    /// resource the cluster may not serve (a custom resource not installed) or these
    /// credentials may not read, which is an answer, not a failure.
    pub async fn list_if_readable<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
    ) -> Result<std::result::Result<Vec<T>, u16>> {
        self.pages(what, path, true).await
    }

    async fn pages<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        readable_only: bool,
    ) -> Result<std::result::Result<Vec<T>, u16>> {
        let mut all = Vec::new();
        let mut next: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        for _ in 0..MAX_PAGES {
            let mut url = format!("{path}{sep}limit={PAGE}");
            if let Some(c) = &next {
                url.push_str("&continue=");
                url.push_str(&crate::http::form_encode([("", c.as_str())])[1..]);
            }
            let (status, body) = self.send(reqwest::Method::GET, &url, None).await?;
            if readable_only && next.is_none() && matches!(status, 403 | 404) {
                return Ok(Err(status));
            }
            if status != 200 {
                return Err(self.failed(what, status, &body));
            }
            let page: List<T> = self.parse(what, &body)?;
            all.extend(page.items);
            next = page.metadata.next.filter(|c| !c.is_empty());
            if next.is_none() {
                return Ok(Ok(all));
            }
        }
        Err(self.error(&format!("{what}: more than {} items", PAGE * MAX_PAGES), None))
    }

    /// `PATCH path` with `body` as `content_type`.
    pub async fn patch(&self, what: &str, path: &str, content_type: &str, body: String) -> Result<()> {
        let (status, resp) = self.send(reqwest::Method::PATCH, path, Some((content_type, body))).await?;
        if status == 200 { Ok(()) } else { Err(self.failed(what, status, &resp)) }
    }

    /// `DELETE path` (which may carry `?propagationPolicy=`): the object as the API server
    /// answers it, i.e. as it stood when the delete took effect (its status then); `None` when
    /// it is gone already (`404`). An answer that is not the object (a `Status`, which some
    /// resources send) reads as `T::default()`.
    pub async fn delete<T: DeserializeOwned + Default>(&self, what: &str, path: &str) -> Result<Option<T>> {
        let (status, resp) = self.send(reqwest::Method::DELETE, path, None).await?;
        match status {
            200 | 202 => Ok(Some(serde_json::from_slice(&resp).unwrap_or_default())),
            404 => Ok(None),
            _ => Err(self.failed(what, status, &resp)),
        }
    }

    /// `POST path` with a JSON body; `Ok(false)` when it exists already (`409`).
    pub async fn create(&self, what: &str, path: &str, body: String) -> Result<bool> {
        let (status, resp) = self.send(reqwest::Method::POST, path, Some(("application/json", body))).await?;
        match status {
            200..=202 => Ok(true),
            409 => Ok(false),
            _ => Err(self.failed(what, status, &resp)),
        }
    }
}

fn status_of(body: &[u8]) -> Status {
    serde_json::from_slice(body).unwrap_or_default()
}
