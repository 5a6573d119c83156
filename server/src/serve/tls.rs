//! TLS for `--tls` (a self-signed certificate for 127.0.0.1, ::1 and localhost, made with
//! rcgen at startup) and `--cert/--key` (PEM files).
//!
//! The accept loop ([`super::limits`]) runs each handshake in the connection's own task with
//! [`HANDSHAKE_TIMEOUT`], so a slow or silent client cannot hold up other connections, and
//! under the connection cap. Only HTTP/1.1 is offered (WebSockets upgrade from HTTP/1.1). The crypto
//! provider is rustls' ring provider, chosen explicitly.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How long a client may take to finish the TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server configuration and the certificate it presents (PEM, for `--write-cert`).
pub(crate) struct TlsMaterial {
    /// The rustls configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// The leaf certificate, PEM.
    pub cert_pem: String,
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not form a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A fresh self-signed certificate for the loopback names.
pub(crate) fn self_signed() -> anyhow::Result<TlsMaterial> {
    let names = vec![
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        "localhost".to_owned(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)
        .context("cannot make a self-signed certificate")?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let cert_pem = certified.cert.pem();
    let config = server_config(vec![certified.cert.der().clone()], key)?;
    Ok(TlsMaterial { config, cert_pem })
}

/// The certificate chain and key from PEM files.
pub(crate) fn load(cert: &Path, key: &Path) -> anyhow::Result<TlsMaterial> {
    let cert_pem = std::fs::read_to_string(cert)
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
    let config = server_config(chain, key)?;
    Ok(TlsMaterial { config, cert_pem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_parses_back() {
        let material = self_signed().expect("makes a certificate");
        let chain = CertificateDer::pem_slice_iter(material.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM");
        assert_eq!(chain.len(), 1);
        assert_eq!(material.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
