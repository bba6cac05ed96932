//! HTTPS: the certificate chain and key a server presents, read once at
//! start into a rustls configuration (ring for the cryptography, TLS 1.2
//! and 1.3, HTTP/1.1 by ALPN).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::ServerError;

/// The PEM files of `reproml server --tls-cert --tls-key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate, followed by any intermediate ones.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn problem(path: &Path, message: impl Into<String>) -> ServerError {
    ServerError::Tls {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The acceptor for `files`; an error names the file and what is wrong.
pub(crate) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServerError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| problem(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| problem(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(problem(
            &files.cert,
            "it holds no certificate (a PEM block -----BEGIN CERTIFICATE-----)",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        problem(
            &files.key,
            format!("{e} (a PEM private key is expected: -----BEGIN PRIVATE KEY-----)"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| problem(&files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            problem(
                &files.key,
                format!(
                    "{e} (is it the key of the certificate in {}?)",
                    files.cert.display()
                ),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Certificates made at test time, for the tests of every crate that
/// speaks HTTPS (feature `test-support`).
#[cfg(feature = "test-support")]
pub mod testing {
    use std::path::{Path, PathBuf};

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    use super::TlsFiles;

    /// A private CA's certificate (PEM), with what it needs to sign.
    pub fn certificate_authority(name: &str) -> (CertificateParams, KeyPair, String) {
        let key = KeyPair::generate().expect("a key pair");
        let mut params =
            CertificateParams::new(Vec::<String>::new()).expect("parameters without names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).expect("a CA certificate").pem();
        (params, key, pem)
    }

    /// Writes into `dir` a private CA (`ca.pem`) and a server certificate
    /// it signed for 127.0.0.1 and localhost (`server.pem`, `server.key`);
    /// returns the CA's path and the server's files.
    pub fn private_ca(dir: &Path) -> (PathBuf, TlsFiles) {
        let (ca_params, ca_key, ca_pem) = certificate_authority("reproml test CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("a key pair");
        let params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("valid names");
        let cert = params
            .signed_by(&key, &issuer)
            .expect("a server certificate");
        let write = |file: &str, text: &str| {
            let path = dir.join(file);
            std::fs::write(&path, text).expect("a writable folder");
            path
        };
        (
            write("ca.pem", &ca_pem),
            TlsFiles {
                cert: write("server.pem", &cert.pem()),
                key: write("server.key", &key.serialize_pem()),
            },
        )
    }
}
