//! HTTPS end to end: a server with a certificate from a private CA made
//! at test time, and this client trusting that CA, another one, or the
//! system's roots.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use reproml_client::{Client, ClientError};
use reproml_core::run::sample_result;
use reproml_core::split::SplitName;
use reproml_core::{ExperimentSpec, RunIndex, VariantLabel};
use reproml_server::{EmbeddedServer, Limits, ServerConfig, ServerError, TlsFiles, tls_testing};

/// A private CA and a server certificate it signed, in a folder of
/// their own.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    files: TlsFiles,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("reproml-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, files) = tls_testing::private_ca(&dir);
    Pki { dir, ca, files }
}

fn start(pki: &Pki, db: &Path) -> EmbeddedServer {
    EmbeddedServer::start(ServerConfig {
        db: db.to_owned(),
        master_seed: Some(7),
        token: Some("a-token-of-sixteen-or-more".into()),
        limits: Limits::default(),
        allow_delete: false,
        tls: Some(pki.files.clone()),
    })
    .unwrap()
}

fn trusting(server: &EmbeddedServer, ca: &Path) -> Client {
    Client::new(&server.url(), Some("a-token-of-sixteen-or-more".into()))
        .with_ca_certificates(&std::fs::read(ca).unwrap())
        .unwrap()
}

#[test]
fn a_client_trusting_the_servers_ca_works_over_https() {
    let pki = pki("works");
    let server = start(&pki, &pki.dir.join("r.db"));
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let client = trusting(&server, &pki.ca);
    client.health().unwrap();
    let spec = ExperimentSpec::from_toml(
        "id = \"tls\"\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\nruns = 2\n",
        "test",
    )
    .unwrap();
    let e = client.create_experiment(&spec).unwrap().0;
    // A split stream, verified, and a result, over the encrypted socket.
    let seed = client.seed(&e.spec.id, RunIndex::new(0)).unwrap().seed;
    let split = client
        .split(&e.spec.id, RunIndex::new(0), SplitName::Train, seed)
        .unwrap();
    assert!(!split.is_empty());
    let variant: VariantLabel = "v".parse().unwrap();
    assert!(
        client
            .post_result(
                &e.spec.id,
                &variant,
                RunIndex::new(0),
                &sample_result(seed, 0.5, 1)
            )
            .unwrap()
    );
    assert_eq!(client.runs(&e.spec.id, None).unwrap().len(), 1);
}

#[test]
fn a_certificate_the_client_does_not_trust_is_refused_with_what_to_do() {
    let pki = pki("refused");
    let server = start(&pki, &pki.dir.join("r.db"));
    // The system's roots, then another private CA: neither signed it.
    let other = pki.dir.join("other-ca.pem");
    std::fs::write(&other, tls_testing::certificate_authority("another CA").2).unwrap();
    for client in [
        // Five retries by default, 3.1 s of backoff: none may happen.
        Client::new(&server.url(), None),
        trusting(&server, &other),
    ] {
        let started = std::time::Instant::now();
        let err = client.health().unwrap_err();
        assert!(matches!(err, ClientError::Tls { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("certificate") && message.contains("--ca-cert"),
            "{message}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "a refused certificate is not retried"
        );
    }
    // Not a certificate at all.
    let err = Client::new(&server.url(), None)
        .with_ca_certificates(b"hello")
        .unwrap_err();
    assert!(matches!(err, ClientError::BadCaCertificates(_)), "{err}");
    // And the server goes on serving those it trusts.
    trusting(&server, &pki.ca).health().unwrap();
}

#[test]
fn plain_http_to_a_tls_server_fails_and_the_server_serves_on() {
    let pki = pki("plain");
    let server = start(&pki, &pki.dir.join("r.db"));
    let plain = server.url().replace("https://", "http://");
    assert!(Client::new(&plain, None).with_retries(0).health().is_err());
    trusting(&server, &pki.ca).health().unwrap();
}

#[test]
fn listening_beyond_loopback_needs_a_token_and_tls() {
    let outside: SocketAddr = "0.0.0.0:7878".parse().unwrap();
    let inside: SocketAddr = "127.0.0.1:7878".parse().unwrap();
    let check = reproml_server::check_listen_address;
    assert!(check(inside, None, false).is_ok());
    assert!(matches!(
        check(outside, None, true),
        Err(ServerError::NonLoopbackWithoutToken(_))
    ));
    let err = check(outside, Some("t"), false).unwrap_err();
    assert!(matches!(err, ServerError::NonLoopbackWithoutTls(_)));
    assert!(err.to_string().contains("--tls-cert"), "{err}");
    assert!(check(outside, Some("t"), true).is_ok());
}

#[test]
fn unusable_certificate_files_are_named_and_leave_no_database() {
    let pki = pki("unusable");
    let other_key = pki.dir.join("other.key");
    // The key of another certificate.
    let elsewhere = pki.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::copy(tls_testing::private_ca(&elsewhere).1.key, &other_key).unwrap();
    let db = pki.dir.join("never.db");
    for (files, named) in [
        (
            TlsFiles {
                cert: pki.dir.join("missing.pem"),
                key: pki.files.key.clone(),
            },
            "missing.pem",
        ),
        (
            TlsFiles {
                cert: pki.files.key.clone(), // a key where the certificate goes
                key: pki.files.key.clone(),
            },
            "server.key",
        ),
        (
            TlsFiles {
                cert: pki.files.cert.clone(),
                key: other_key.clone(),
            },
            "other.key",
        ),
    ] {
        let err = EmbeddedServer::start(ServerConfig {
            db: db.clone(),
            master_seed: None,
            token: None,
            limits: Limits::default(),
            allow_delete: false,
            tls: Some(files),
        })
        .err()
        .unwrap();
        assert!(matches!(err, ServerError::Tls { .. }), "{err}");
        assert!(err.to_string().contains(named), "{err}");
    }
    assert!(!db.exists());
}
