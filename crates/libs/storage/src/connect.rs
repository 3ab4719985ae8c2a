//! How every service and the CLI reach PostgreSQL: the URL, with TLS as
//! libpq spells it. `sslmode` (`disable`, `prefer`, `require`, `verify-ca`,
//! `verify-full`) and `sslrootcert` (a PEM file of CA certificates, or
//! `system` for the public roots) are query parameters of the URL, so a
//! managed database's connection string works as its provider prints it:
//!
//! `postgres://capi:…@db.example.com/capi?sslmode=verify-full&sslrootcert=/etc/capi/db-ca.pem`
//!
//! Without `sslmode` the connection is plain, as the local setup has always
//! been. As in libpq, `require` with a `sslrootcert` checks the chain like
//! `verify-ca`. TLS is rustls with the ring provider (no OpenSSL to build).

use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
use percent_encoding::percent_decode_str;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use std::{str::FromStr, sync::Arc};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values this system honours (`allow` is refused: it
/// tries plain text first, which no production setup wants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, certificate not checked.
    Prefer,
    /// TLS or no connection, certificate not checked.
    Require,
    /// TLS, the chain checked against `sslrootcert`, any host name.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, TargetError> {
        Ok(match s {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => {
                return Err(TargetError(format!(
                    "sslmode={s:?} is not one of disable, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }
}

/// A database URL that cannot be used; the message names the parameter,
/// never the URL (it carries the password).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(String);

/// A parsed database URL and the TLS it asks for, built once (the CA file
/// is read here, not per connection).
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    mode: SslMode,
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("hosts", &self.config.get_hosts())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let (rest, sslmode, rootcert) = split_tls_params(url)?;
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| TargetError(format!("not a PostgreSQL URL: {e}")))?;
        let mode = match (sslmode.as_deref(), &rootcert) {
            (Some(m), _) => m.parse()?,
            (None, Some(_)) => {
                return Err(TargetError(
                    "sslrootcert is given without sslmode (say sslmode=verify-full)".into(),
                ));
            }
            (None, None) => SslMode::Disable,
        };
        let roots = rootcert.as_deref().map(load_roots).transpose()?;
        let verifier: Option<Arc<dyn ServerCertVerifier>> = match (mode, roots) {
            (SslMode::Disable, _) => None,
            (SslMode::Prefer, _) | (SslMode::Require, None) => {
                Some(Arc::new(Unverified(provider())))
            }
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(TargetError(
                    "sslmode=verify-ca and verify-full need sslrootcert=<PEM file of the CA> \
                     (or sslrootcert=system for a server certified by a public CA)"
                        .into(),
                ));
            }
            (SslMode::Require | SslMode::VerifyCa, Some(roots)) => {
                Some(Arc::new(ChainOnly(webpki_verifier(roots)?)))
            }
            (SslMode::VerifyFull, Some(roots)) => Some(webpki_verifier(roots)?),
        };
        config.ssl_mode(match mode {
            SslMode::Disable => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            _ => WireMode::Require,
        });
        let tls = verifier
            .map(|v| {
                ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map(|b| {
                        MakeRustlsConnect::new(
                            b.dangerous()
                                .with_custom_certificate_verifier(v)
                                .with_no_client_auth(),
                        )
                    })
                    .map_err(|e| TargetError(format!("TLS set-up: {e}")))
            })
            .transpose()?;
        Ok(Self { config, mode, tls })
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// One new connection (the pool calls this for each of its own).
    pub async fn connect(&self) -> Result<AsyncPgConnection, ConnectionError> {
        let bad = |e: tokio_postgres::Error| ConnectionError::BadConnection(error_chain(&e));
        match &self.tls {
            None => {
                let (client, conn) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(bad)?;
                AsyncPgConnection::try_from_client_and_connection(client, conn).await
            }
            Some(tls) => {
                let (client, conn) = self.config.connect(tls.clone()).await.map_err(bad)?;
                AsyncPgConnection::try_from_client_and_connection(client, conn).await
            }
        }
    }
}

/// Parses the URL and opens one connection (the CLI, `capi migrate`).
pub async fn connect(url: &str) -> anyhow::Result<AsyncPgConnection> {
    Ok(PgTarget::parse(url)?.connect().await?)
}

/// tokio-postgres's message plus its causes (the TLS reason is a cause).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query
/// (tokio-postgres knows neither `verify-*` nor `sslrootcert`); every other
/// parameter stays as written. A key=value connection string is passed on
/// unchanged (tokio-postgres reads its `sslmode`: disable, prefer, require).
fn split_tls_params(url: &str) -> Result<(String, Option<String>, Option<String>), TargetError> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let Some((base, query)) = url.split_once('?').filter(|_| is_url) else {
        return Ok((url.to_owned(), None, None));
    };
    let (mut sslmode, mut rootcert, mut kept) = (None, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| TargetError(format!("the URL parameter {key} is not UTF-8")))
        };
        match key {
            "sslmode" => sslmode = Some(decode(value)?),
            "sslrootcert" => rootcert = Some(decode(value)?),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, sslmode, rootcert))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_roots(path: &str) -> Result<RootCertStore, TargetError> {
    if path == "system" {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    }
    let unreadable = |e: &dyn std::fmt::Display| TargetError(format!("sslrootcert {path}: {e}"));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
        roots
            .add(cert.map_err(|e| unreadable(&e))?)
            .map_err(|e| unreadable(&e))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"holds no PEM certificate"));
    }
    Ok(roots)
}

fn webpki_verifier(roots: RootCertStore) -> Result<Arc<WebPkiServerVerifier>, TargetError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TargetError(format!("sslrootcert: {e}")))
}

/// `prefer`/`require` without a CA: encrypted, the certificate not checked
/// (the handshake's signatures still are).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the CA; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first, the name last: a name error means
        // the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, Option<String>, Option<String>) {
        split_tls_params(url).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn tls_parameters_leave_the_url_and_the_rest_stays() {
        assert_eq!(
            split(
                "postgres://u:p@h:5432/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20b.pem&connect_timeout=5"
            ),
            (
                "postgres://u:p@h:5432/db?application_name=x&connect_timeout=5".to_owned(),
                Some("verify-full".to_owned()),
                Some("/etc/ca b.pem".to_owned())
            )
        );
        assert_eq!(
            split("postgres://h/db?sslmode=require"),
            (
                "postgres://h/db".to_owned(),
                Some("require".to_owned()),
                None
            )
        );
        assert_eq!(
            split("host=h dbname=db sslmode=require"),
            ("host=h dbname=db sslmode=require".to_owned(), None, None)
        );
    }

    fn refusal(url: &str) -> String {
        match PgTarget::parse(url) {
            Ok(t) => panic!("{url} accepted as {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_target_that_cannot_work_is_refused_at_start_naming_the_parameter() {
        assert!(
            refusal("postgres://h/db?sslmode=allow").starts_with("sslmode=\"allow\" is not one of")
        );
        assert!(refusal("postgres://h/db?sslmode=verify-full").contains("need sslrootcert"));
        assert!(refusal("postgres://h/db?sslrootcert=/x.pem").contains("without sslmode"));
        let missing =
            refusal("postgres://u:secret@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
        assert!(
            missing.starts_with("sslrootcert /nonexistent/ca.pem:"),
            "{missing}"
        );
        assert!(!missing.contains("secret"));
        let not_url = refusal("postgres://u:secret@h:notaport/db");
        assert!(not_url.starts_with("not a PostgreSQL URL"), "{not_url}");
        assert!(!not_url.contains("secret"), "{not_url}");
    }

    #[test]
    fn modes_and_the_default() {
        let mode = |url: &str| {
            PgTarget::parse(url)
                .map(|t| t.ssl_mode())
                .map_err(|e| e.to_string())
        };
        assert_eq!(mode("postgres://h/db"), Ok(SslMode::Disable));
        assert_eq!(
            mode("postgres://h/db?sslmode=require"),
            Ok(SslMode::Require)
        );
        assert_eq!(mode("postgres://h/db?sslmode=prefer"), Ok(SslMode::Prefer));
        assert_eq!(
            mode("postgres://h/db?sslmode=verify-full&sslrootcert=system"),
            Ok(SslMode::VerifyFull)
        );
    }
}
