//! TLS with rustls (ring provider), from PEM certificate and key files.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Loads the certificate chain and key and builds an acceptor offering HTTP/2 and HTTP/1.1.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|err| pem_error(err, "tls_cert", cert, "PEM certificate chain"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(err, "tls_cert", cert, "PEM certificate chain"))?;
    if certs.is_empty() {
        anyhow::bail!(
            "server.tls_cert: no PEM certificate chain found in {}",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| pem_error(err, "tls_key", key, "PEM private key"))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("server.tls_cert/tls_key: the key does not match the certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Names the setting and the file: it cannot be read, holds nothing of the kind, or is not PEM.
fn pem_error(err: pem::Error, setting: &str, path: &Path, kind: &str) -> anyhow::Error {
    let path = path.display();
    match err {
        pem::Error::Io(io) => {
            anyhow::Error::new(io).context(format!("server.{setting}: cannot open {path}"))
        }
        pem::Error::NoItemsFound => {
            anyhow::anyhow!("server.{setting}: no {kind} found in {path}")
        }
        other => {
            anyhow::Error::new(other).context(format!("server.{setting}: {path} is not a {kind}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(cert: &Path, key: &Path) -> String {
        match acceptor(cert, key) {
            Ok(_) => "accepted".into(),
            Err(err) => format!("{err:#}"),
        }
    }

    #[test]
    fn each_bad_file_is_named_with_its_setting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, generated.cert.pem()).expect("cert");
        std::fs::write(&key, generated.key_pair.serialize_pem()).expect("key");
        assert_eq!(message(&cert, &key), "accepted");

        let missing = dir.path().join("missing.pem");
        let msg = message(&missing, &key);
        assert!(msg.starts_with("server.tls_cert: cannot open "), "{msg}");
        // A key where the chain belongs: no certificate in it.
        let msg = message(&key, &key);
        assert!(
            msg.starts_with("server.tls_cert: no PEM certificate chain found in "),
            "{msg}"
        );
        let msg = message(&cert, &cert);
        assert!(
            msg.starts_with("server.tls_key: no PEM private key found in "),
            "{msg}"
        );
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").expect("broken");
        let msg = message(&broken, &key);
        assert!(
            msg.contains("server.tls_cert: ") && msg.contains("is not a PEM certificate chain"),
            "{msg}"
        );
    }
}
