//! PostgreSQL connections over rustls (ring), honouring `sslmode` and `sslrootcert` in
//! the URL the way libpq users expect, and never sending anything in clear once TLS
//! is asked for:
//!
//! - no `sslmode`, or `disable`: plain TCP (a local socket or a trusted network);
//! - `prefer`: TLS when the server offers it, else plain;
//! - `require` and `verify-ca`: TLS; the certificate chain is verified against
//!   `sslrootcert` (else the webpki roots), not the host name (stricter than libpq's
//!   `require`, which verifies nothing without a root file);
//! - `verify-full`: the chain and the host name.

use std::sync::Arc;

use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;

/// What the URL asks of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

fn bad(msg: impl Into<String>) -> ConnectionError {
    ConnectionError::InvalidConnectionUrl(msg.into())
}

/// Splits `sslmode`/`sslrootcert` off a `postgres://` URL: the URL tokio-postgres
/// understands, the mode, and the root file.
pub fn split_url(raw: &str) -> Result<(String, SslMode, Option<String>), ConnectionError> {
    let mut url = url::Url::parse(raw).map_err(|e| bad(format!("database_url: {e}")))?;
    let mut mode = SslMode::Disable;
    let mut root = None;
    let mut rest = Vec::new();
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslmode" => {
                mode = match v.as_ref() {
                    "disable" => SslMode::Disable,
                    "prefer" | "allow" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(bad(format!(
                            "sslmode '{other}': use disable, prefer, require, verify-ca or verify-full"
                        )));
                    }
                }
            }
            "sslrootcert" => root = Some(v.into_owned()),
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    let tp_mode = match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        _ => "require",
    };
    rest.push(("sslmode".into(), tp_mode.into()));
    url.query_pairs_mut().clear().extend_pairs(rest);
    Ok((url.into(), mode, root))
}

/// The rustls client of a mode: roots from `root` (PEM) or webpki's.
pub fn client_config(mode: SslMode, root: Option<&str>) -> Result<ClientConfig, ConnectionError> {
    let mut roots = RootCertStore::empty();
    match root {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            for c in certs {
                let c = c.map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            }
            if roots.is_empty() {
                return Err(bad(format!("sslrootcert {path}: no certificate")));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bad(format!("TLS roots: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if mode == SslMode::VerifyFull {
        webpki
    } else {
        Arc::new(ChainOnly(webpki))
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Verifies the chain, not the name (`verify-ca`).
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

/// Opens one connection for a `postgres://` URL.
pub async fn connect(url: &str) -> Result<AsyncPgConnection, ConnectionError> {
    let (pg_url, mode, root) = split_url(url)?;
    let failed = |e: tokio_postgres::Error| ConnectionError::BadConnection(e.to_string());
    if mode == SslMode::Disable {
        let (client, conn) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls)
            .await
            .map_err(failed)?;
        return AsyncPgConnection::try_from_client_and_connection(client, conn).await;
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(mode, root.as_deref())?);
    let (client, conn) = tokio_postgres::connect(&pg_url, tls)
        .await
        .map_err(failed)?;
    AsyncPgConnection::try_from_client_and_connection(client, conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_off_the_url() {
        let (u, m, r) = split_url(
            "postgres://u:p@db:5432/x?sslmode=verify-full&sslrootcert=/ca.pem&application_name=h",
        )
        .unwrap();
        assert_eq!(m, SslMode::VerifyFull);
        assert_eq!(r.as_deref(), Some("/ca.pem"));
        assert_eq!(
            u,
            "postgres://u:p@db:5432/x?application_name=h&sslmode=require"
        );
        assert!(
            split_url("postgres://u:p@db:5432/x?sslmode=verify-full")
                .unwrap()
                .0
                .parse::<tokio_postgres::Config>()
                .is_ok()
        );
        let (u, m, r) = split_url("postgres://db/x").unwrap();
        assert_eq!(
            (u.as_str(), m, r),
            ("postgres://db/x?sslmode=disable", SslMode::Disable, None)
        );
        assert!(split_url("postgres://db/x?sslmode=sometimes").is_err());
        // What is left is a URL tokio-postgres takes.
        assert!(u.parse::<tokio_postgres::Config>().is_ok());
    }
}
