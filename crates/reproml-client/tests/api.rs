//! The API end to end: a real server on 127.0.0.1, real sockets, this client.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use reproml_api::ProblemCode;
use reproml_client::{Client, ClientError};
use reproml_core::run::sample_result;
use reproml_core::split::SplitName;
use reproml_core::{ExperimentId, ExperimentSpec, RunIndex, Seed, VariantLabel};
use reproml_server::{EmbeddedServer, Limits, ServerConfig};

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reproml-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("reproml.db")
}

fn start(db: &Path, token: Option<&str>) -> EmbeddedServer {
    EmbeddedServer::start(ServerConfig {
        db: db.to_owned(),
        master_seed: Some(42),
        token: token.map(str::to_owned),
        limits: Limits::default(),
        allow_delete: false,
        tls: None,
    })
    .unwrap()
}

fn spec(id: &str, runs: u32) -> ExperimentSpec {
    ExperimentSpec::from_toml(
        &format!(
            "id = \"{id}\"\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 2\nruns = {runs}\n[split]\ntrain = 0.7\ntest = 0.2\nvalidation = 0.1\n"
        ),
        "test",
    )
    .unwrap()
}

#[test]
fn splits_are_a_deterministic_disjoint_cover_in_the_run_s_order() {
    let db = temp_db("splits");
    let server = start(&db, None);
    let client = Client::new(&server.url(), None);
    let (e, created) = client.create_experiment(&spec("digits-e", 3)).unwrap();
    assert!(created);
    let id = e.spec.id.clone();
    let seed = client.seed(&id, RunIndex::new(1)).unwrap().seed;
    assert_eq!(seed, e.seeds[1]);
    let mut all = Vec::new();
    for name in SplitName::ALL {
        let split = client.split(&id, RunIndex::new(1), name, seed).unwrap();
        // The client asks for the current version, and this server has it.
        assert_eq!(split.version, reproml_data::wire::Version::V3);
        assert_eq!(split.header.shape.pixels(), 64);
        assert_eq!(split.header.examples as usize, split.len());
        all.extend(split.indices());
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (0..1797).collect::<Vec<_>>(),
        "train ∪ test ∪ validation = every example, once"
    );

    let train = client
        .split(&id, RunIndex::new(1), SplitName::Train, seed)
        .unwrap();
    assert_eq!(
        train,
        client
            .split(&id, RunIndex::new(1), SplitName::Train, seed)
            .unwrap(),
        "same bytes every time"
    );
    let other_run = client
        .split(
            &id,
            RunIndex::new(2),
            SplitName::Train,
            client.seed(&id, RunIndex::new(2)).unwrap().seed,
        )
        .unwrap();
    let mut a = train.indices();
    let mut b = other_run.indices();
    assert_ne!(a, b, "another run sees another order");
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "but the same training examples (split seed s_0)");

    // Run after run, a split lands in the memory of one the client (or a
    // clone of it, as a runner's jobs hold) dropped.
    let client = Client::new(&server.url(), None);
    let first = client
        .split(&id, RunIndex::new(1), SplitName::Train, seed)
        .unwrap();
    let memory = first.image(0).as_ptr();
    drop(first);
    let next = client
        .clone()
        .split(&id, RunIndex::new(2), SplitName::Train, e.seeds[2])
        .unwrap();
    assert_eq!(next.image(0).as_ptr(), memory);
    assert_eq!(next.indices(), other_run.indices());
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn a_seed_mismatch_is_refused_and_the_server_goes_on() {
    let db = temp_db("mismatch");
    let server = start(&db, None);
    let client = Client::new(&server.url(), None);
    let id = client.create_experiment(&spec("e", 2)).unwrap().0.spec.id;
    let err = client
        .split(&id, RunIndex::new(0), SplitName::Test, Seed::new(12345))
        .unwrap_err();
    assert_eq!(err.code(), Some(ProblemCode::SeedMismatch), "{err}");
    let seed = client.seed(&id, RunIndex::new(0)).unwrap().seed;
    assert!(
        client
            .split(&id, RunIndex::new(0), SplitName::Test, seed)
            .is_ok(),
        "still serving"
    );
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn seeds_are_the_same_after_a_restart_and_after_losing_the_database() {
    let db = temp_db("restart");
    let first = {
        let server = start(&db, None);
        Client::new(&server.url(), None)
            .create_experiment(&spec("e", 4))
            .unwrap()
            .0
            .seeds
    };
    let server = start(&db, None);
    let again = Client::new(&server.url(), None)
        .experiment(&"e".parse().unwrap())
        .unwrap()
        .seeds;
    assert_eq!(first, again);
    drop(server);
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let server = start(&db, None);
    let recreated = Client::new(&server.url(), None)
        .create_experiment(&spec("e", 4))
        .unwrap();
    assert!(recreated.1, "a new database");
    assert_eq!(
        recreated.0.seeds, first,
        "same master seed, same identifier: same seeds"
    );
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn thirty_two_concurrent_clients_fetch_and_post_correctly() {
    let db = temp_db("concurrent");
    let server = start(&db, None);
    let url = server.url();
    let client = Client::new(&url, None);
    let id: ExperimentId = client
        .create_experiment(&spec("many", 32))
        .unwrap()
        .0
        .spec
        .id;
    let expected_train = client
        .split(
            &id,
            RunIndex::new(0),
            SplitName::Train,
            client.seed(&id, RunIndex::new(0)).unwrap().seed,
        )
        .unwrap();
    let handles: Vec<_> = RunIndex::first(32)
        .map(|run| {
            let url = url.clone();
            let id = id.clone();
            std::thread::spawn(move || {
                let client = Client::new(&url, None);
                let seed = client.seed(&id, run).unwrap().seed;
                let train = client.split(&id, run, SplitName::Train, seed).unwrap();
                let test = client.split(&id, run, SplitName::Test, seed).unwrap();
                let variant: VariantLabel = if run.get() % 2 == 0 {
                    "buggy"
                } else {
                    "corrected"
                }
                .parse()
                .unwrap();
                assert!(
                    client
                        .post_result(
                            &id,
                            &variant,
                            run,
                            &sample_result(seed, f64::from(run.get()) / 100.0, 2)
                        )
                        .unwrap()
                );
                (run, seed, train, test.len())
            })
        })
        .collect();
    let mut seen = Vec::new();
    for h in handles {
        let (run, seed, train, test_len) = h.join().unwrap();
        assert_eq!(train.header.seed, seed);
        assert_eq!(train.len(), expected_train.len());
        assert_eq!(test_len, 359);
        seen.push(run);
    }
    assert_eq!(seen.len(), 32);
    let runs = client.runs(&id, None).unwrap();
    assert_eq!(runs.len(), 32);
    for r in &runs {
        assert_eq!(r.result.metrics.accuracy, f64::from(r.run.get()) / 100.0);
    }
    assert_eq!(
        client
            .runs(&id, Some(&"buggy".parse().unwrap()))
            .unwrap()
            .len(),
        16
    );
    let csv = client.runs_csv(&id).unwrap();
    assert_eq!(csv.lines().count(), 33);
    assert!(csv.starts_with("experiment,variant,run,seed,"));
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn results_are_idempotent_and_validated() {
    let db = temp_db("results");
    let server = start(&db, None);
    let client = Client::new(&server.url(), None);
    let e = client.create_experiment(&spec("r", 2)).unwrap().0;
    let id = e.spec.id;
    let buggy: VariantLabel = "buggy".parse().unwrap();
    assert!(
        client
            .post_result(
                &id,
                &buggy,
                RunIndex::new(0),
                &sample_result(e.seeds[0], 0.9, 2)
            )
            .unwrap()
    );
    assert!(
        !client
            .post_result(
                &id,
                &buggy,
                RunIndex::new(0),
                &sample_result(e.seeds[0], 0.9, 2)
            )
            .unwrap(),
        "a retry is fine"
    );
    let err = client
        .post_result(
            &id,
            &buggy,
            RunIndex::new(0),
            &sample_result(e.seeds[0], 0.8, 2),
        )
        .unwrap_err();
    assert_eq!(err.code(), Some(ProblemCode::ResultConflict));
    let err = client
        .post_result(
            &id,
            &buggy,
            RunIndex::new(1),
            &sample_result(e.seeds[0], 0.8, 2),
        )
        .unwrap_err();
    assert_eq!(err.code(), Some(ProblemCode::SeedMismatch));
    let mut bad = sample_result(e.seeds[1], 0.8, 2);
    bad.epochs.pop();
    let err = client
        .post_result(&id, &buggy, RunIndex::new(1), &bad)
        .unwrap_err();
    assert_eq!(err.code(), Some(ProblemCode::InvalidResult), "{err}");
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

/// Sends a raw request and returns (status, content type, body).
fn raw(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
        .map(|l| l[13..].trim().to_owned())
        .unwrap_or_default();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, content_type, body)
}

#[test]
fn bad_requests_get_the_right_problem_and_the_server_stays_up() {
    let db = temp_db("bad");
    let server = start(&db, None);
    let url = server.url();
    let client = Client::new(&url, None);
    let e = client.create_experiment(&spec("e", 3)).unwrap().0;
    let json = [("Content-Type", "application/json")];
    let post_run = "/v1/experiments/e/variants/buggy/runs/0";
    let good = serde_json::to_vec(&sample_result(e.seeds[0], 0.5, 2)).unwrap();
    let mut unknown_field: serde_json::Value = serde_json::from_slice(&good).unwrap();
    unknown_field["surprise"] = serde_json::json!(1);
    let mut wrong_type: serde_json::Value = serde_json::from_slice(&good).unwrap();
    wrong_type["seed"] = serde_json::json!("forty-two");
    let huge = vec![b' '; 5 << 20];
    /// (method, path, headers, body, expected status, expected code)
    type Case<'a> = (
        &'a str,
        String,
        &'a [(&'a str, &'a str)],
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/experiments".into(),
            &json,
            b"{not json".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/v1/experiments".into(),
            &json,
            br#"{"id":"x","model":"m","challenge":"c","epochs":1,"colour":"red"}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/experiments".into(),
            &json,
            br#"{"id":"x","model":"m","challenge":"c","epochs":"one"}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/experiments".into(),
            &json,
            br#"{"id":"x","model":"m","challenge":"c","epochs":0}"#.to_vec(),
            422,
            "invalid_spec",
        ),
        (
            "POST",
            "/v1/experiments".into(),
            &[],
            br#"{"id":"x"}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            post_run.into(),
            &json,
            serde_json::to_vec(&unknown_field).unwrap(),
            422,
            "invalid_body",
        ),
        (
            "POST",
            post_run.into(),
            &json,
            serde_json::to_vec(&wrong_type).unwrap(),
            422,
            "invalid_body",
        ),
        ("POST", post_run.into(), &json, huge, 413, "body_too_large"),
        (
            "GET",
            "/v1/experiments/e/runs/-1/seed".into(),
            &[],
            vec![],
            400,
            "bad_run_index",
        ),
        (
            "GET",
            "/v1/experiments/e/runs/99999999999999/seed".into(),
            &[],
            vec![],
            400,
            "bad_run_index",
        ),
        (
            "GET",
            "/v1/experiments/e/runs/3/seed".into(),
            &[],
            vec![],
            404,
            "run_not_found",
        ),
        (
            "GET",
            "/v1/experiments/nope".into(),
            &[],
            vec![],
            404,
            "experiment_not_found",
        ),
        (
            "GET",
            "/v1/experiments/..%2Fetc".into(),
            &[],
            vec![],
            400,
            "bad_identifier",
        ),
        (
            "GET",
            format!(
                "/v1/experiments/e/runs/0/data/train?seed={}",
                e.seeds[0].get() + 1
            ),
            &[],
            vec![],
            409,
            "seed_mismatch",
        ),
        (
            "GET",
            "/v1/experiments/e/runs/0/data/train".into(),
            &[],
            vec![],
            400,
            "bad_query",
        ),
        (
            "GET",
            format!(
                "/v1/experiments/e/runs/0/data/everything?seed={}",
                e.seeds[0]
            ),
            &[],
            vec![],
            404,
            "split_not_found",
        ),
        (
            "GET",
            "/v1/nothing".into(),
            &[],
            vec![],
            404,
            "route_not_found",
        ),
        (
            "DELETE",
            "/v1/experiments".into(),
            &[],
            vec![],
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, headers, body, status, code) in cases {
        let (got, content_type, text) = raw(&url, method, &path, headers, &body);
        assert_eq!(got, status, "{method} {path}: {text}");
        assert_eq!(content_type, "application/problem+json", "{method} {path}");
        let problem: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: {text}"));
        assert_eq!(problem["code"], code, "{method} {path}: {text}");
        assert!(!problem["detail"].as_str().unwrap().is_empty());
        assert!(
            client.health().is_ok(),
            "the server is still up after {method} {path}"
        );
    }
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn a_token_is_required_when_configured() {
    let db = temp_db("token");
    let server = start(&db, Some("correct-horse-battery-staple"));
    let url = server.url();
    assert!(Client::new(&url, None).health().is_ok(), "health is open");
    let (status, content_type, page) = raw(&url, "GET", "/", &[], b"");
    assert_eq!(
        status, 200,
        "the dashboard page is open; its API calls are not"
    );
    assert!(content_type.starts_with("text/html") && page.contains("/assets/app.js"));
    assert_eq!(
        Client::new(&url, None).experiments().unwrap_err().code(),
        Some(ProblemCode::MissingToken)
    );
    assert_eq!(
        Client::new(&url, Some("wrong-token-wrong-token".into()))
            .experiments()
            .unwrap_err()
            .code(),
        Some(ProblemCode::BadToken)
    );
    assert!(
        Client::new(&url, Some("correct-horse-battery-staple".into()))
            .experiments()
            .is_ok()
    );
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

/// A small valid split stream of run 0, split train, seed 1.
fn small_stream() -> Vec<u8> {
    use reproml_data::wire::{self, SplitHeader, SplitOrder};
    let header = SplitHeader {
        experiment: "e".parse().unwrap(),
        run: RunIndex::new(0),
        split: SplitName::Train,
        seed: Seed::new(1),
        examples: 3,
        shape: reproml_data::ImageShape {
            channels: 1,
            height: 2,
            width: 2,
        },
        classes: 2,
        normalization: reproml_data::Normalization {
            max_value: 255,
            mean: vec![0.5],
            std: vec![0.2],
        },
        dataset_digest: "0".repeat(64),
        order: SplitOrder::Epoch0,
    };
    let (mut body, mut enc) = wire::begin(&header, wire::CURRENT);
    let pixels = [1u8, 2, 3, 4];
    body.extend(enc.chunk((0..3).map(|i| (i, 1, &pixels[..]))));
    body.extend(enc.finish());
    body
}

/// A one-shot fake server that answers any request with `body` as a split
/// stream; returns its URL and the thread to join.
fn serve_once(body: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.reproml.split.v1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(&body).unwrap();
    });
    (format!("http://{addr}"), fake)
}

#[test]
fn a_corrupted_chunk_is_detected() {
    let mut body = small_stream();
    let flip = body.len() - 40; // inside the last record
    body[flip] ^= 0x10;
    let (url, fake) = serve_once(body);
    let client = Client::new(&url, None).with_retries(0);
    let err = client
        .split(
            &"e".parse().unwrap(),
            RunIndex::new(0),
            SplitName::Train,
            Seed::new(1),
        )
        .unwrap_err();
    assert!(matches!(err, ClientError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    fake.join().unwrap();
}

#[test]
fn a_valid_stream_of_another_run_is_refused() {
    // Every checksum holds, but the header is run 0's and run 1 was asked
    // for (a confused proxy or cache): it must not be trained on.
    let (url, fake) = serve_once(small_stream());
    let err = Client::new(&url, None)
        .with_retries(0)
        .split(
            &"e".parse().unwrap(),
            RunIndex::new(1),
            SplitName::Train,
            Seed::new(1),
        )
        .unwrap_err();
    assert!(matches!(err, ClientError::Corrupt { .. }), "{err}");
    let text = with_causes(&err);
    assert!(text.contains("run 0 (asked: 1)"), "{text}");
    fake.join().unwrap();
}

/// The error with its causes (what the CLI prints).
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// A fake server answering one connection after another with `answers`
/// (status line and body); returns its URL and the thread to join.
fn answer_in_turn(
    answers: Vec<(&'static str, &'static str)>,
) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        for (status, body) in answers {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nRetry-After: 0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).unwrap();
            conn.write_all(body.as_bytes()).unwrap();
        }
    });
    (format!("http://{addr}"), fake)
}

const BUSY: (&str, &str) = (
    "503 Service Unavailable",
    r#"{"code":"internal","detail":"busy"}"#,
);
const HEALTHY: (&str, &str) = ("200 OK", r#"{"status":"ok","version":"0","api":"v1"}"#);

#[test]
fn a_busy_server_is_asked_again() {
    let (url, fake) = answer_in_turn(vec![BUSY, BUSY, HEALTHY]);
    let health = Client::new(&url, None).with_retries(2).health().unwrap();
    assert_eq!(health.status, "ok");
    fake.join().unwrap();
    // Without retries left the 503 is reported as it is.
    let (url, fake) = answer_in_turn(vec![BUSY]);
    let err = Client::new(&url, None)
        .with_retries(0)
        .health()
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Problem { status: 503, .. }),
        "{err}"
    );
    fake.join().unwrap();
}

#[test]
fn an_unreachable_server_is_retried_then_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let started = std::time::Instant::now();
    let err = Client::new(&format!("http://{addr}"), None)
        .with_retries(2)
        .health()
        .unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "backed off 100 + 200 ms"
    );
}

#[test]
fn the_openapi_document_lists_exactly_the_routes() {
    let doc: serde_json::Value = serde_json::from_str(reproml_server::OPENAPI).unwrap();
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut routes: Vec<(String, String)> = reproml_server::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);
    // And every listed route is really served (not the fallback).
    let db = temp_db("openapi");
    let server = start(&db, None);
    for (method, path) in reproml_server::ROUTES {
        let concrete = path
            .replace("{id}", "e")
            .replace("{run}", "0")
            .replace("{split}", "train")
            .replace("{variant}", "v")
            .replace(
                "{name}",
                if path.starts_with("/assets/") {
                    "app.js"
                } else {
                    "boxes.svg"
                },
            );
        let (_, _, body) = raw(&server.url(), method, &concrete, &[], b"");
        assert!(
            !body.contains(r#""code":"route_not_found""#)
                && !body.contains(r#""code":"method_not_allowed""#),
            "{method} {path}: {body}"
        );
    }
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn a_held_write_lock_gets_503_then_the_retry_succeeds() {
    let db = temp_db("locked");
    let server = start(&db, None);
    let client = Client::new(&server.url(), None);
    let e = client.create_experiment(&spec("locked", 2)).unwrap().0;
    let variant: VariantLabel = "v".parse().unwrap();
    client
        .post_result(
            &e.spec.id,
            &variant,
            RunIndex::new(0),
            &sample_result(e.seeds[0], 0.5, 2),
        )
        .unwrap();

    // Another process (a backup, the sqlite3 shell) takes the write lock.
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let result = sample_result(e.seeds[1], 0.6, 2);
    let err = Client::new(&server.url(), None)
        .with_retries(0)
        .post_result(&e.spec.id, &variant, RunIndex::new(1), &result)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Problem {
                status: 503,
                code: ProblemCode::ServerBusy,
                ..
            }
        ),
        "{err}"
    );
    // Readers do not wait for the lock.
    let started = std::time::Instant::now();
    assert_eq!(client.runs(&e.spec.id, None).unwrap().len(), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));

    // The lock is let go while the client waits as the 503 asked: the
    // retry records the run.
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        other.execute_batch("COMMIT").unwrap();
    });
    assert!(
        client
            .post_result(&e.spec.id, &variant, RunIndex::new(1), &result)
            .unwrap()
    );
    release.join().unwrap();
    assert_eq!(client.runs(&e.spec.id, None).unwrap().len(), 2);
    drop(server);
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn an_experiment_deleted_or_replaced_by_another_process_is_not_served_stale() {
    let db = temp_db("elsewhere");
    let server = start(&db, None);
    let client = Client::new(&server.url(), None);
    let e = client.create_experiment(&spec("shared", 2)).unwrap().0;
    assert_eq!(client.experiment(&e.spec.id).unwrap().spec.epochs, 2);
    // `reproml experiment delete --embedded` on the same file, elsewhere.
    let mut other = reproml_store::Store::open(&db, Some(42)).unwrap();
    other.delete_experiment(&e.spec.id).unwrap();
    let err = client.experiment(&e.spec.id).unwrap_err();
    assert_eq!(err.code(), Some(ProblemCode::ExperimentNotFound), "{err}");
    // Re-created there with three epochs: this server serves three, and a
    // two-epoch result is refused as the new spec says.
    let mut three = spec("shared", 2);
    three.epochs = 3;
    other.create_experiment(&three).unwrap();
    let now = client.experiment(&e.spec.id).unwrap();
    assert_eq!(now.spec.epochs, 3);
    let err = client
        .post_result(
            &e.spec.id,
            &"v".parse().unwrap(),
            RunIndex::new(0),
            &sample_result(now.seeds[0], 0.5, 2),
        )
        .unwrap_err();
    assert_eq!(err.code(), Some(ProblemCode::InvalidResult), "{err}");
    drop(server);
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}

#[test]
fn a_data_set_s_content_is_served_by_its_digest_only() {
    let db = temp_db("content");
    let server = start(&db, None);
    let url = server.url();
    let (status, _, body) = raw(&url, "GET", "/v1/datasets/digits/content", &[], b"");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_identifier"), "{body}");
    let unknown = format!("/v1/datasets/{}/content", "0".repeat(64));
    let (status, _, body) = raw(&url, "GET", &unknown, &[], b"");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("dataset_not_found"), "{body}");
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
}
