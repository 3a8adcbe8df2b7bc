//! TLS for every connection the store makes (the pool, the LISTEN
//! connection, migrations, deleting a hub), chosen by the URL's `sslmode`
//! as libpq chooses:
//!
//! - `disable`: plain;
//! - `prefer` (the default): TLS when the server offers it, plain when it
//!   does not;
//! - `require`: TLS, the certificate unchecked;
//! - `verify-ca`: TLS, the certificate chain must lead to a trusted root;
//! - `verify-full`: that, and the certificate must name the host.
//!
//! The trusted roots are the system's (`rustls-native-certs`: the files
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` name, else the platform's store), or
//! only the certificates of the PEM file `sslrootcert=PATH` names
//! (`sslrootcert=system`: the system's). As with libpq, `prefer` and
//! `require` with `sslrootcert=` check the chain as `verify-ca` does.
//!
//! rustls with the ring provider: no OpenSSL, no aws-lc. Channel binding
//! (SCRAM-SHA-256-PLUS) is not offered; SCRAM-SHA-256 is used.

use perdure_store::{StoreError, TlsFailure};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// How much TLS a store URL asks for (`sslmode=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// What tokio-postgres is told: whether to ask for TLS, and whether a
    /// server that refuses it may be used anyway.
    fn driver(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            SslMode::Disable => Driver::Disable,
            SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Driver::Require,
        }
    }
}

/// Where the trusted roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Roots {
    System,
    File(PathBuf),
}

/// The TLS parameters of a store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    pub(crate) mode: SslMode,
    /// `sslrootcert=`, when given.
    pub(crate) roots: Option<Roots>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            mode: SslMode::Prefer,
            roots: None,
        }
    }
}

impl TlsOptions {
    /// Takes the parameter `key=value` if it is one of TLS's (`sslmode`,
    /// `sslrootcert`): `Ok(true)`; `Ok(false)` for any other parameter; an
    /// error (the reason) for a value that is not one.
    pub(crate) fn take(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "sslmode" => {
                self.mode = SslMode::parse(value).ok_or_else(|| {
                    format!(
                        "unknown sslmode `{value}` (expected disable, prefer, require, \
                         verify-ca or verify-full)"
                    )
                })?;
                Ok(true)
            }
            "sslrootcert" => {
                let path = percent_decode(value).ok_or_else(|| {
                    format!("sslrootcert `{value}` is not a percent-encoded path")
                })?;
                if path.is_empty() {
                    return Err("sslrootcert names no file".into());
                }
                self.roots = Some(match path.as_str() {
                    "system" => Roots::System,
                    _ => Roots::File(PathBuf::from(path)),
                });
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Sets the driver's side of it on `cfg`.
    pub(crate) fn configure(&self, cfg: &mut tokio_postgres::Config) {
        cfg.ssl_mode(self.mode.driver());
    }

    /// The connector every connection of the store uses. `url` (shown
    /// redacted) names the store in errors about the root certificates.
    pub(crate) fn connector(&self, url: &str) -> Result<Tls, StoreError> {
        let bad = |why: String| StoreError::BadUrl(perdure_store::redact_url(url), why);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let roots = match (&self.roots, self.mode) {
            (Some(r), _) => Some(r.clone()),
            (None, SslMode::VerifyCa | SslMode::VerifyFull) => Some(Roots::System),
            (None, _) => None,
        };
        let (store, described) = match &roots {
            None => (
                None,
                "no roots (the certificate is not checked)".to_string(),
            ),
            Some(r) => {
                let (store, described) = load_roots(r).map_err(bad)?;
                (Some(Arc::new(store)), described)
            }
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS versions: {e}")))?;
        let mut config = match (store, self.mode) {
            (Some(store), SslMode::VerifyFull) => {
                builder.with_root_certificates(store).with_no_client_auth()
            }
            (store, _) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly {
                    roots: store,
                    algorithms,
                }))
                .with_no_client_auth(),
        };
        // What PostgreSQL 17 expects (and earlier servers ignore).
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            roots: described.into(),
        })
    }
}

/// The roots `r` names, and how errors describe them.
fn load_roots(r: &Roots) -> Result<(RootCertStore, String), String> {
    let mut store = RootCertStore::empty();
    match r {
        Roots::System => {
            // Unreadable entries are skipped, as OpenSSL skips them; only
            // finding no root at all is an error.
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no trusted root certificates were found on this system \
                     (SSL_CERT_FILE, SSL_CERT_DIR): name a PEM file with sslrootcert=PATH"
                    .into());
            }
            Ok((store, "the system's trusted roots".into()))
        }
        Roots::File(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("sslrootcert `{shown}`: {e}"))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert `{shown}` holds no certificate that can be used as a root"
                ));
            }
            Ok((store, format!("the certificates in {shown}")))
        }
    }
}

/// `%XX` escapes decoded, as tokio-postgres decodes URL parameters.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The certificate check of `prefer`, `require` and `verify-ca`: with
/// roots, the chain must lead to one of them (the name is not checked);
/// without, anything is accepted. The handshake's signatures are checked
/// either way, so the server holds the key of the certificate it shows.
#[derive(Debug)]
struct ChainOnly {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The store's TLS connector (tokio-postgres's `MakeTlsConnect`), cheap to
/// clone. tokio-postgres uses it only when the mode asks for TLS.
#[derive(Clone)]
pub(crate) struct Tls {
    config: Arc<ClientConfig>,
    /// The roots, as errors name them.
    roots: Arc<str>,
}

impl<S> MakeTlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Connect;
    type Error = TlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, TlsError> {
        // Called for every connection, TLS or not (a Unix socket has no
        // host name): a name TLS cannot use fails only a TLS handshake.
        Ok(Connect {
            config: self.config.clone(),
            roots: self.roots.clone(),
            name: ServerName::try_from(domain.to_string()).ok(),
            domain: domain.to_string(),
        })
    }
}

/// One connection's TLS handshake.
pub(crate) struct Connect {
    config: Arc<ClientConfig>,
    roots: Arc<str>,
    name: Option<ServerName<'static>>,
    domain: String,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream<S>, TlsError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = self.name.ok_or(TlsError::BadName(self.domain))?;
            tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await
                .map(TlsStream)
                .map_err(|error| TlsError::Handshake {
                    error,
                    roots: self.roots,
                })
        })
    }
}

/// Why a TLS handshake failed, as the connector reports it to
/// tokio-postgres (and [`classify`] reads it back).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("`{0}` is not a host name or address TLS can check")]
    BadName(String),
    #[error("{error}")]
    Handshake { error: io::Error, roots: Arc<str> },
}

/// A TLS connection to the server.
pub(crate) struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// The TLS failure behind a connection error, if it is one: the error and
/// its sources, read down to the connector's [`TlsError`] (or
/// tokio-postgres's refusal of a server that does not offer TLS).
pub(crate) fn classify(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<TlsError>() {
            return Some(match tls {
                TlsError::BadName(_) => TlsFailure::Handshake(tls.to_string()),
                TlsError::Handshake { error, roots } => handshake_failure(error, roots),
            });
        }
        // tokio-postgres's own words when the server answers `N` to the
        // TLS request under sslmode=require (its error kinds are private).
        if err.source().is_none() && err.to_string() == "server does not support TLS" {
            return Some(TlsFailure::NotOffered);
        }
        cur = err.source();
    }
    None
}

fn handshake_failure(error: &io::Error, roots: &str) -> TlsFailure {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let Some(rustls::Error::InvalidCertificate(cert)) = rustls_error else {
        return TlsFailure::Handshake(error.to_string());
    };
    match cert {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            TlsFailure::WrongName(error.to_string())
        }
        CertificateError::UnknownIssuer => TlsFailure::NotTrusted(format!(
            "it is not signed by any of {roots} (a self-signed certificate must itself \
             be one of them: sslrootcert=PATH)"
        )),
        _ => TlsFailure::NotTrusted(format!("{error} (checked against {roots})")),
    }
}
