//! rustls client settings for `smpps` connectors: ring provider, the configured roots
//! (or the webpki roots), an optional client certificate.

use std::sync::Arc;

use hermod_crypto::tls::{TlsError, load_certs, load_key, load_roots};
use rustls::{ClientConfig, RootCertStore};

use super::config::ConnectorConfig;

/// The TLS client configuration of a connector.
pub fn client_config(c: &ConnectorConfig) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &c.ca_file {
        Some(ca) => load_roots(ca)?,
        None => {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            roots
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_root_certificates(roots);
    match (&c.client_cert_file, &c.client_key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(TlsError::Config),
        _ => Ok(builder.with_no_client_auth()),
    }
}
