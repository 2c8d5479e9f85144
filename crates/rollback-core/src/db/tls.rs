//! TLS for PostgreSQL connections, with libpq's `sslmode` semantics, on rustls with the
//! `ring` provider:
//!
//! - `disable`: plain TCP;
//! - `allow`, `prefer`: TLS when the server offers it, certificate not verified;
//! - `require`: TLS or no connection, certificate not verified (PaaS databases use
//!   certificates no public root signs) — unless `sslrootcert` is given, then as `verify-ca`,
//!   like libpq;
//! - `verify-ca`: the chain must lead to a trusted root; the host name is not checked;
//! - `verify-full`: chain and host name.
//!
//! Trusted roots: the `sslrootcert` PEM file, else `~/.postgresql/root.crt` (libpq's default),
//! else the system bundle (`SSL_CERT_FILE`, or the usual Debian/RHEL/Alpine locations);
//! `sslrootcert=system` picks the system bundle directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::url::{PgParams, SslMode};

/// System CA bundles, first found wins.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The TLS connector for `params`, `None` for `sslmode=disable`.
pub fn connector(params: &PgParams) -> Result<Option<MakeRustlsConnect>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verify = match params.sslmode {
        SslMode::Disable => return Ok(None),
        SslMode::Allow | SslMode::Prefer => Verify::Nothing,
        SslMode::Require if params.sslrootcert.is_none() => Verify::Nothing,
        SslMode::Require | SslMode::VerifyCa => Verify::Chain,
        SslMode::VerifyFull => Verify::Full,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
        Verify::Chain | Verify::Full => {
            let roots = Arc::new(load_roots(params.sslrootcert.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("TLS setup: {e}"))?;
            let verifier: Arc<dyn ServerCertVerifier> =
                if verify == Verify::Full { webpki } else { Arc::new(ChainOnly(webpki)) };
            builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verify {
    Nothing,
    Chain,
    Full,
}

fn load_roots(sslrootcert: Option<&str>) -> Result<RootCertStore, String> {
    let file: PathBuf = match sslrootcert {
        Some("system") => system_bundle()?,
        Some(path) => PathBuf::from(path),
        None => {
            let home_root = std::env::var_os("HOME").map(|h| Path::new(&h).join(".postgresql/root.crt"));
            match home_root.filter(|p| p.is_file()) {
                Some(p) => p,
                None => system_bundle()?,
            }
        }
    };
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&file)
        .map_err(|e| format!("cannot read the root certificates `{}`: {e}", file.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("bad certificate in `{}`: {e}", file.display()))?;
        store.add(cert).map_err(|e| format!("unusable root certificate in `{}`: {e}", file.display()))?;
    }
    if store.is_empty() {
        return Err(format!("no certificate in `{}`", file.display()));
    }
    Ok(store)
}

fn system_bundle() -> Result<PathBuf, String> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or_else(|| "no system CA bundle found; set `sslrootcert` in the database URL".to_owned())
}

/// `require`/`prefer` without a root: encrypt, but trust any certificate (libpq does the
/// same). Handshake signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must be trusted; a certificate for another name is accepted.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
