//! The handlers through the router, without a socket
//! (`tower::ServiceExt::oneshot`): statuses, problem codes and bodies.
//! `reproml-client`'s tests cover the same API over real connections.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use reproml_api::{Experiment, Problem, ProblemCode, RecordedRun, RunSeed};
use reproml_core::Seed;
use reproml_core::metrics::ConfusionMatrix;
use reproml_core::run::{Scores, sample_result};
use reproml_server::{AppState, Limits, REQUEST_ID, ServerConfig, router};
use serde_json::{Value, json};
use tower::ServiceExt;

struct App {
    router: Router,
    dir: std::path::PathBuf,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn app(name: &str, token: Option<&str>) -> App {
    app_with(name, token, false)
}

fn app_with(name: &str, token: Option<&str>, allow_delete: bool) -> App {
    let dir = std::env::temp_dir().join(format!("reproml-handlers-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = ServerConfig {
        db: dir.join("h.db"),
        master_seed: Some(42),
        token: token.map(str::to_owned),
        limits: Limits::default(),
        allow_delete,
        tls: None,
    };
    let state = AppState::open(&config).unwrap();
    App {
        router: router(state, &config.limits),
        dir,
    }
}

/// Sends one request; returns the status, the headers and the body.
async fn send(
    app: &App,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    send_with(app, method, path, body, token, &[]).await
}

/// [`send`] with more request headers.
async fn send_with(
    app: &App,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
    headers: &[(header::HeaderName, &str)],
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let request = match body {
        Some(b) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    (parts.status, parts.headers, bytes.to_vec())
}

fn problem(status: StatusCode, headers: &axum::http::HeaderMap, body: &[u8]) -> Problem {
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/problem+json",
        "{status}"
    );
    let p: Problem = serde_json::from_slice(body).unwrap();
    assert_eq!(
        p.status,
        status.as_u16(),
        "the body's status is the answer's"
    );
    p
}

/// A valid one-epoch result of run `run` of `e`, trained by artifact `name`.
fn result_by(e: &Experiment, run: usize, name: &str) -> Value {
    let mut r = sample_result(e.seeds[run], 0.5, 1);
    r.artifact.name = name.into();
    serde_json::to_value(r).unwrap()
}

/// Creates experiment `e1` (one epoch) and returns it as stored.
async fn create_e1(app: &App, token: Option<&str>) -> Experiment {
    send(app, "POST", "/v1/experiments", Some(spec(1)), token).await;
    let (_, _, body) = send(app, "GET", "/v1/experiments/e1", None, token).await;
    serde_json::from_slice(&body).unwrap()
}

fn spec(epochs: u32) -> Value {
    json!({"id": "e1", "model": "mlp", "challenge": "digits", "epochs": epochs, "runs": 3})
}

#[tokio::test]
async fn experiments_are_created_once_and_conflicts_name_the_differences() {
    let app = app("create", None);
    let (status, _, body) = send(&app, "POST", "/v1/experiments", Some(spec(2)), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let created: Experiment = serde_json::from_slice(&body).unwrap();
    assert_eq!(created.seeds.len(), 3);
    let (status, _, body) = send(&app, "POST", "/v1/experiments", Some(spec(2)), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Experiment>(&body).unwrap(),
        created
    );
    let (status, headers, body) = send(&app, "POST", "/v1/experiments", Some(spec(3)), None).await;
    let p = problem(status, &headers, &body);
    assert_eq!(p.code, ProblemCode::ExperimentConflict);
    assert_eq!(p.extra["differences"], json!(["epochs: 2 → 3"]));
}

#[tokio::test]
async fn bad_requests_get_their_problem_codes() {
    let app = app("bad", None);
    send(&app, "POST", "/v1/experiments", Some(spec(1)), None).await;
    let cases = [
        (
            "GET",
            "/v1/experiments/nope",
            None,
            ProblemCode::ExperimentNotFound,
        ),
        (
            "GET",
            "/v1/experiments/..",
            None,
            ProblemCode::BadIdentifier,
        ),
        (
            "GET",
            "/v1/experiments/e1/runs/x/seed",
            None,
            ProblemCode::BadRunIndex,
        ),
        (
            "GET",
            "/v1/experiments/e1/runs/3/seed",
            None,
            ProblemCode::RunNotFound,
        ),
        (
            "GET",
            "/v1/experiments/e1/runs/0/data/holdout?seed=1",
            None,
            ProblemCode::SplitNotFound,
        ),
        (
            "GET",
            "/v1/experiments/e1/runs/0/data/train?seed=1",
            None,
            ProblemCode::SeedMismatch,
        ),
        (
            "GET",
            "/v1/experiments/e1/runs?format=xml",
            None,
            ProblemCode::BadFormat,
        ),
        (
            "GET",
            "/v1/experiments/e1/runs?colour=red",
            None,
            ProblemCode::BadQuery,
        ),
        ("GET", "/v2/anything", None, ProblemCode::RouteNotFound),
        (
            "DELETE",
            "/v1/experiments",
            None,
            ProblemCode::MethodNotAllowed,
        ),
        (
            "POST",
            "/v1/experiments",
            Some(json!({"id": "e2"})),
            ProblemCode::InvalidBody,
        ),
        (
            "POST",
            "/v1/experiments",
            Some(json!({"id": "e3", "model": "mlp", "challenge": "digits", "epochs": 0})),
            ProblemCode::InvalidSpec,
        ),
    ];
    for (method, path, body, code) in cases {
        let (status, headers, bytes) = send(&app, method, path, body, None).await;
        let p = problem(status, &headers, &bytes);
        assert_eq!(p.code, code, "{method} {path}: {}", p.detail);
        assert!(!p.detail.is_empty());
    }
}

#[tokio::test]
async fn results_are_checked_recorded_and_listed() {
    let app = app("results", None);
    send(&app, "POST", "/v1/experiments", Some(spec(2)), None).await;
    let (_, _, body) = send(&app, "GET", "/v1/experiments/e1/runs/1/seed", None, None).await;
    let seed: RunSeed = serde_json::from_slice(&body).unwrap();
    assert_eq!(seed.run.get(), 1);

    let path = "/v1/experiments/e1/variants/buggy/runs/1";
    let wrong =
        serde_json::to_value(sample_result(Seed::new(seed.seed.get() + 1), 0.5, 2)).unwrap();
    let (status, headers, body) = send(&app, "POST", path, Some(wrong), None).await;
    assert_eq!(
        problem(status, &headers, &body).code,
        ProblemCode::SeedMismatch
    );

    let short = serde_json::to_value(sample_result(seed.seed, 0.5, 1)).unwrap();
    let (status, headers, body) = send(&app, "POST", path, Some(short), None).await;
    let p = problem(status, &headers, &body);
    assert_eq!(p.code, ProblemCode::InvalidResult);
    assert!(p.extra["violations"].is_array());

    let good = serde_json::to_value(sample_result(seed.seed, 0.5, 2)).unwrap();
    let (status, _, _) = send(&app, "POST", path, Some(good.clone()), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = send(&app, "POST", path, Some(good), None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same result again is idempotent"
    );
    let other = serde_json::to_value(sample_result(seed.seed, 0.6, 2)).unwrap();
    let (status, headers, body) = send(&app, "POST", path, Some(other), None).await;
    assert_eq!(
        problem(status, &headers, &body).code,
        ProblemCode::ResultConflict
    );

    let (_, _, body) = send(&app, "GET", "/v1/experiments/e1/runs", None, None).await;
    let runs: Vec<RecordedRun> = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (
            runs.len(),
            runs[0].run.get(),
            runs[0].result.metrics.accuracy
        ),
        (1, 1, 0.5)
    );
    let (status, headers, body) = send(
        &app,
        "GET",
        "/v1/experiments/e1/runs?format=csv",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let rows = reproml_api::runs_csv::read(&body[..], "export").unwrap();
    assert_eq!((rows.len(), rows[0].seed), (1, seed.seed));
}

#[tokio::test]
async fn a_token_guards_everything_but_health_and_every_answer_has_a_request_id() {
    let token = "correct-horse-battery-staple";
    let app = app("token", Some(token));
    let (status, headers, _) = send(&app, "GET", "/v1/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let first: u64 = headers[REQUEST_ID].to_str().unwrap().parse().unwrap();
    let (status, headers, body) = send(&app, "GET", "/v1/experiments", None, None).await;
    assert_eq!(
        problem(status, &headers, &body).code,
        ProblemCode::MissingToken
    );
    let (status, headers, body) = send(
        &app,
        "GET",
        "/v1/experiments",
        None,
        Some("wrong-token-but-long"),
    )
    .await;
    assert_eq!(problem(status, &headers, &body).code, ProblemCode::BadToken);
    let (status, headers, _) = send(&app, "GET", "/v1/experiments", None, Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    let later: u64 = headers[REQUEST_ID].to_str().unwrap().parse().unwrap();
    assert!(later > first, "ids grow: {first} then {later}");
}

#[tokio::test]
async fn numbers_come_back_bit_for_bit() {
    let app = app("floats", None);
    send(&app, "POST", "/v1/experiments", Some(spec(1)), None).await;
    let (_, _, body) = send(&app, "GET", "/v1/experiments/e1/runs/0/seed", None, None).await;
    let seed: RunSeed = serde_json::from_slice(&body).unwrap();
    // Values whose shortest decimal needs all 17 digits: a parser that
    // is off by one ulp returns another double. The metrics are derived
    // from a matrix chosen to give such values.
    let matrix =
        ConfusionMatrix::try_from(vec![vec![1_234_567, 89], vec![101, 7_654_321]]).unwrap();
    let scores = Scores::of(&matrix).unwrap();
    let tricky = [scores.accuracy, scores.precision, scores.recall, 0.1 + 0.2];
    assert!(
        tricky.iter().all(|v| format!("{v:?}").len() >= 18),
        "{tricky:?}"
    );
    let mut result = sample_result(seed.seed, 0.5, 1);
    result.metrics = scores;
    result.epochs[0].test = scores;
    result.epochs[0].confusion = Some(matrix);
    result.epochs[0].loss = tricky[3];
    let path = "/v1/experiments/e1/variants/v/runs/0";
    let body = serde_json::to_vec(&result).unwrap();
    let request = Request::builder()
        .method("POST")
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let (_, _, body) = send(&app, "GET", "/v1/experiments/e1/runs", None, None).await;
    let runs: Vec<RecordedRun> = serde_json::from_slice(&body).unwrap();
    let m = &runs[0].result.metrics;
    let back = [
        m.accuracy,
        m.precision,
        m.recall,
        runs[0].result.epochs[0].loss,
    ];
    for (sent, got) in tricky.iter().zip(back) {
        assert_eq!(sent.to_bits(), got.to_bits(), "sent {sent:?}, got {got:?}");
    }
    // Posting the same result again is recognised as the same.
    let (status, _, _) = send(
        &app,
        "POST",
        path,
        Some(serde_json::to_value(&result).unwrap()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_variant_refuses_results_of_another_artifact() {
    let app = app("artifact", None);
    let e = create_e1(&app, None).await;
    let with = |run: usize, name: &str| result_by(&e, run, name);
    let (status, _, _) = send(
        &app,
        "POST",
        "/v1/experiments/e1/variants/v/runs/0",
        Some(with(0, "torch-1.13.1")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, body) = send(
        &app,
        "POST",
        "/v1/experiments/e1/variants/v/runs/1",
        Some(with(1, "torch-2.15.0")),
        None,
    )
    .await;
    let p = problem(status, &headers, &body);
    assert_eq!(p.code, ProblemCode::ArtifactConflict);
    assert_eq!(p.extra["recorded_artifact"]["name"], "torch-1.13.1");
    assert_eq!(p.extra["given_artifact"]["name"], "torch-2.15.0");
}

#[tokio::test]
async fn metrics_are_derived_from_the_confusion_matrix_or_refused() {
    let app = app("confusion", None);
    let e = create_e1(&app, None).await;
    let path = "/v1/experiments/e1/variants/v/runs/0";
    let mut r = sample_result(e.seeds[0], 0.5, 1);
    r.epochs[0].test.f1 = 0.75;
    r.metrics.f1 = 0.75;
    let (status, headers, body) = send(
        &app,
        "POST",
        path,
        Some(serde_json::to_value(&r).unwrap()),
        None,
    )
    .await;
    let p = problem(status, &headers, &body);
    assert_eq!(p.code, ProblemCode::InvalidResult);
    assert!(
        p.detail
            .contains("f1 is 0.75, but the confusion matrix gives 0.5"),
        "{}",
        p.detail
    );
    r.epochs[0].confusion = None;
    let (status, headers, body) = send(
        &app,
        "POST",
        path,
        Some(serde_json::to_value(&r).unwrap()),
        None,
    )
    .await;
    let p = problem(status, &headers, &body);
    assert!(p.detail.contains("confusion is missing"), "{}", p.detail);
    let (_, _, body) = send(&app, "GET", "/v1/experiments/e1/runs", None, None).await;
    assert_eq!(body, b"[]".as_slice(), "nothing was recorded");
}

#[tokio::test]
async fn experiments_no_engine_can_train_are_refused_at_creation() {
    let app = app("names", None);
    let create = |model: &str, challenge: &str| json!({"id": "n", "model": model, "challenge": challenge, "epochs": 1});
    let (status, headers, body) = send(
        &app,
        "POST",
        "/v1/experiments",
        Some(create("resnet50", "digits")),
        None,
    )
    .await;
    let p = problem(status, &headers, &body);
    assert_eq!(p.code, ProblemCode::InvalidSpec);
    assert!(p.detail.contains("custom:NAME"), "{}", p.detail);
    let (status, headers, body) = send(
        &app,
        "POST",
        "/v1/experiments",
        Some(create("mlp", "imagenet")),
        None,
    )
    .await;
    let p = problem(status, &headers, &body);
    assert!(p.detail.contains("reproml data import"), "{}", p.detail);
    // A model only an external client knows is said so explicitly.
    let (status, _, _) = send(
        &app,
        "POST",
        "/v1/experiments",
        Some(create("custom:resnet50", "digits")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn deleting_needs_a_token_or_allow_delete_and_frees_the_names() {
    // Loopback without a token: deleting is off.
    let app = app("nodelete", None);
    send(&app, "POST", "/v1/experiments", Some(spec(1)), None).await;
    let (status, headers, body) = send(&app, "DELETE", "/v1/experiments/e1", None, None).await;
    assert_eq!(
        problem(status, &headers, &body).code,
        ProblemCode::DeleteForbidden
    );

    // With a token, only with the token.
    let token = "the-token-of-this-test";
    let app = app_with("delete", Some(token), false);
    let e = create_e1(&app, Some(token)).await;
    let post = |run: usize, name: &str| result_by(&e, run, name);
    let path = |run: usize| format!("/v1/experiments/e1/variants/Corrected/runs/{run}");
    let (status, _, _) = send(&app, "POST", &path(0), Some(post(0, "a")), Some(token)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = send(&app, "DELETE", "/v1/experiments/e1", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A typo variant goes, and its name takes another artifact afterwards.
    let (status, _, body) = send(
        &app,
        "DELETE",
        "/v1/experiments/e1/variants/Corrected",
        None,
        Some(token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["deleted_runs"],
        1
    );
    let (status, _, _) = send(&app, "POST", &path(0), Some(post(0, "b")), Some(token)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, body) = send(
        &app,
        "DELETE",
        "/v1/experiments/e1/variants/nothing",
        None,
        Some(token),
    )
    .await;
    assert_eq!(
        problem(status, &headers, &body).code,
        ProblemCode::VariantNotFound
    );

    // The whole experiment goes; the same identifier then takes another spec.
    let (status, _, _) = send(&app, "DELETE", "/v1/experiments/e1", None, Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app, "GET", "/v1/experiments/e1", None, Some(token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send(&app, "POST", "/v1/experiments", Some(spec(3)), Some(token)).await;
    assert_eq!(status, StatusCode::CREATED);
    // The new spec is served, not the deleted one the server had cached.
    let (_, _, body) = send(&app, "GET", "/v1/experiments/e1", None, Some(token)).await;
    let e: Experiment = serde_json::from_slice(&body).unwrap();
    assert_eq!(e.spec.epochs, 3);
    let (status, _, _) = send(&app, "DELETE", "/v1/experiments/zz", None, Some(token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // --allow-delete opens it on a server without a token.
    let app = app_with("allowdelete", None, true);
    send(&app, "POST", "/v1/experiments", Some(spec(1)), None).await;
    let (status, _, _) = send(&app, "DELETE", "/v1/experiments/e1", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

/// Posts run `run` of variant `variant` with final accuracy `accuracy`.
async fn post_run(app: &App, e: &Experiment, variant: &str, run: usize, accuracy: f64) {
    let mut r = sample_result(e.seeds[run], accuracy, 1);
    r.artifact.name = format!("build-{variant}");
    let path = format!("/v1/experiments/e1/variants/{variant}/runs/{run}");
    let (status, _, body) = send(
        app,
        "POST",
        &path,
        Some(serde_json::to_value(r).unwrap()),
        None,
    )
    .await;
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
}

#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_content_security_policy() {
    let app = app("page", Some("0123456789abcdef"));
    for path in ["/", "/assets/app.js", "/assets/app.css"] {
        let (status, headers, body) = send(&app, "GET", path, None, None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{path} needs no token: it holds no data"
        );
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(!body.is_empty());
    }
    let (_, _, page) = send(&app, "GET", "/", None, None).await;
    let page = String::from_utf8(page).unwrap();
    // Nothing the policy would have to allow: no inline script or style.
    assert!(page.contains(r#"<script src="/assets/app.js" defer></script>"#));
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert!(!page.contains("style=") && !page.contains("<style") && !page.contains(" onclick="));
    let (status, headers, body) = send(&app, "GET", "/assets/other.js", None, None).await;
    assert_eq!(
        problem(status, &headers, &body).code,
        ProblemCode::RouteNotFound
    );
    // The data behind it still needs the token.
    let (status, headers, body) = send(&app, "GET", "/v1/progress", None, None).await;
    assert_eq!(
        problem(status, &headers, &body).code,
        ProblemCode::MissingToken
    );
}

#[tokio::test]
async fn polling_is_answered_304_until_something_is_written() {
    let app = app("etag", None);
    let e = create_e1(&app, None).await;
    let (status, headers, _) = send(&app, "GET", "/v1/progress", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let tag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, headers, body) = send_with(
        &app,
        "GET",
        "/v1/progress",
        None,
        None,
        &[(header::IF_NONE_MATCH, &tag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(headers[header::ETAG], tag.as_str());
    post_run(&app, &e, "a", 0, 0.5).await;
    let (status, headers, body) = send_with(
        &app,
        "GET",
        "/v1/progress",
        None,
        None,
        &[(header::IF_NONE_MATCH, &tag)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a write changes the answer");
    assert_ne!(headers[header::ETAG], tag.as_str());
    let progress: Vec<reproml_api::VariantProgress> = serde_json::from_slice(&body).unwrap();
    assert_eq!(progress.len(), 1);
    assert_eq!(
        (progress[0].variant.as_str(), progress[0].recorded),
        ("a", 1)
    );
    assert_eq!(progress[0].artifact.as_ref().unwrap().name, "build-a");
    assert_eq!(progress[0].first_recorded_at, progress[0].last_recorded_at);
    // A delete changes the answers too.
    let tag = headers[header::ETAG].to_str().unwrap().to_owned();
    let app_delete = |path: &'static str| send(&app, "DELETE", path, None, None);
    let (status, _, _) = app_delete("/v1/experiments/e1/variants/a").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "this server allows no deletes"
    );
    let (status, _, _) = send_with(
        &app,
        "GET",
        "/v1/progress",
        None,
        None,
        &[(header::IF_NONE_MATCH, &tag)],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_MODIFIED,
        "a refused write changes nothing"
    );
    // The API answers data, never a document that could run a script.
    let (_, headers, _) = send(&app, "GET", "/v1/experiments", None, None).await;
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
}

#[tokio::test]
async fn a_tag_is_no_way_around_the_token_and_deletes_change_it() {
    let token = "0123456789abcdef";
    let app = app("etag-token", Some(token));
    let e = create_e1(&app, Some(token)).await;
    let mut r = sample_result(e.seeds[0], 0.5, 1);
    r.artifact.name = "b".into();
    let body = serde_json::to_value(r).unwrap();
    send(
        &app,
        "POST",
        "/v1/experiments/e1/variants/a/runs/0",
        Some(body),
        Some(token),
    )
    .await;
    let (_, headers, _) = send(&app, "GET", "/v1/experiments/e1/runs", None, Some(token)).await;
    let tag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, headers, body) = send_with(
        &app,
        "GET",
        "/v1/experiments/e1/runs",
        None,
        None,
        &[(header::IF_NONE_MATCH, &tag)],
    )
    .await;
    assert_eq!(
        problem(status, &headers, &body).code,
        ProblemCode::MissingToken
    );
    let (status, _, _) = send(
        &app,
        "DELETE",
        "/v1/experiments/e1/variants/a",
        None,
        Some(token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, body) = send_with(
        &app,
        "GET",
        "/v1/experiments/e1/runs",
        None,
        Some(token),
        &[(header::IF_NONE_MATCH, &tag)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the delete changed the runs");
    assert_ne!(headers[header::ETAG], tag.as_str());
    assert_eq!(
        serde_json::from_slice::<Vec<Value>>(&body).unwrap(),
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn the_comparison_is_the_report_compare_makes_from_the_same_runs() {
    let app = app("compare", None);
    let e = create_e1(&app, None).await;
    for run in 0..3 {
        post_run(&app, &e, "a", run, 0.80 + 0.01 * run as f64).await;
        post_run(&app, &e, "b", run, 0.90 + 0.01 * run as f64).await;
    }
    let (status, headers, body) = send(
        &app,
        "GET",
        "/v1/experiments/e1/comparison?variants=a,b",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(headers.contains_key(header::ETAG));
    let answer: Value = serde_json::from_slice(&body).unwrap();

    let (_, _, runs) = send(&app, "GET", "/v1/experiments/e1/runs", None, None).await;
    let runs: Vec<RecordedRun> = serde_json::from_slice(&runs).unwrap();
    let rows: Vec<_> = runs
        .iter()
        .map(|r| reproml_api::runs_csv::RunSummary::new(r, e.spec.seed_policy))
        .collect();
    let options = reproml_report::CompareOptions {
        variants: vec!["a".into(), "b".into()],
        expected_runs: [("e1".to_owned(), 3)].into(),
        ..Default::default()
    };
    let expected = reproml_report::compare(&rows, &options).unwrap();
    assert_eq!(answer["report"], serde_json::to_value(&expected).unwrap());
    assert_eq!(
        answer["verdicts"],
        serde_json::to_value(reproml_report::verdict_lines(&expected)).unwrap()
    );

    // The same comparison as the HTML report, one page with its figures
    // inline, styled but sandboxed.
    let (status, headers, body) = send(
        &app,
        "GET",
        "/v1/experiments/e1/report.html?variants=a,b",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert_eq!(
        policy, "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        "its own style applies; nothing runs or loads"
    );
    let page = String::from_utf8(body).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.contains("<title>e1: a vs b</title>"));
    for line in reproml_report::verdict_lines(&expected) {
        let escaped = line
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(page.contains(&escaped), "{line}");
    }
    assert_eq!(page.matches("<svg").count(), 3, "box plots, curves, spread");
    assert!(!page.contains("<img") && !page.contains("<?xml"));

    for (path, code) in [
        (
            "/v1/experiments/e1/comparison?variants=a",
            ProblemCode::BadQuery,
        ),
        (
            "/v1/experiments/e1/comparison?variants=a,b&alpha=0.7",
            ProblemCode::BadQuery,
        ),
        (
            "/v1/experiments/e1/comparison?variants=a,zz",
            ProblemCode::VariantNotFound,
        ),
        (
            "/v1/experiments/e1/comparison?variants=a,b&margin=-1",
            ProblemCode::BadQuery,
        ),
        (
            "/v1/experiments/e1/comparison?variants=a,b%20c",
            ProblemCode::BadIdentifier,
        ),
        (
            "/v1/experiments/e1/comparison?colour=red",
            ProblemCode::BadQuery,
        ),
        (
            "/v1/experiments/nope/comparison",
            ProblemCode::ExperimentNotFound,
        ),
        (
            "/v1/experiments/e1/report.html?variants=a,b&alpha=0.7",
            ProblemCode::BadQuery,
        ),
        (
            "/v1/experiments/e1/report.html?variants=a",
            ProblemCode::BadQuery,
        ),
    ] {
        let (status, headers, body) = send(&app, "GET", path, None, None).await;
        assert_eq!(problem(status, &headers, &body).code, code, "{path}");
    }
}

#[tokio::test]
async fn figures_are_drawn_by_the_reports_plotting_code() {
    let app = app("figures", None);
    let e = create_e1(&app, None).await;
    for run in 0..3 {
        post_run(&app, &e, "a", run, 0.8).await;
        post_run(&app, &e, "b", run, 0.9).await;
    }
    for name in ["boxes.svg", "curves.svg"] {
        let path = format!("/v1/experiments/e1/figures/{name}?variants=b,a");
        let (status, headers, body) = send(&app, "GET", &path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
        let svg = String::from_utf8(body).unwrap();
        assert!(svg.starts_with("<svg"), "{name}");
        // The legend names the variants in the order asked for.
        let (b, a) = (svg.find("\nb\n</text>"), svg.find("\na\n</text>"));
        assert!(b.is_some() && a.is_some() && b < a, "{name}: {b:?} {a:?}");
    }
    // Every run's own curve, drawn under the means on request.
    let lines = |svg: &[u8]| String::from_utf8_lossy(svg).matches("<polyline").count();
    let (_, _, means) = send(
        &app,
        "GET",
        "/v1/experiments/e1/figures/curves.svg",
        None,
        None,
    )
    .await;
    let (status, _, every) = send(
        &app,
        "GET",
        "/v1/experiments/e1/figures/curves.svg?every_run=true",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // 2 panels × 2 variants × 3 runs more lines.
    assert_eq!(lines(&every), lines(&means) + 12);
    for (path, code) in [
        (
            "/v1/experiments/e1/figures/pie.svg",
            ProblemCode::RouteNotFound,
        ),
        (
            "/v1/experiments/e1/figures/boxes.svg?variants=a,c",
            ProblemCode::VariantNotFound,
        ),
    ] {
        let (status, headers, body) = send(&app, "GET", path, None, None).await;
        assert_eq!(problem(status, &headers, &body).code, code, "{path}");
    }
}

#[tokio::test]
async fn failure_reports_are_checked_counted_and_shown_in_progress() {
    let app = app("failures", None);
    let e = create_e1(&app, None).await;
    let path = "/v1/experiments/e1/variants/buggy/runs/1/failures";
    let report = |seed: u64, error: &str| json!({"seed": seed, "error": error});
    let seed = e.seeds[1].get();
    // Refused: another run's seed, no error, a too long one, an unknown
    // field, a run the experiment does not have.
    for (path, body, want, code) in [
        (path, report(seed + 1, "x"), 409, ProblemCode::SeedMismatch),
        (path, report(seed, " \n"), 422, ProblemCode::InvalidFailure),
        (
            path,
            report(seed, &"x".repeat(reproml_api::MAX_FAILURE_ERROR_BYTES + 1)),
            422,
            ProblemCode::InvalidFailure,
        ),
        (
            path,
            json!({"seed": seed, "error": "x", "attempt": 2}),
            422,
            ProblemCode::InvalidBody,
        ),
        (
            "/v1/experiments/e1/variants/buggy/runs/3/failures",
            report(seed, "x"),
            404,
            ProblemCode::RunNotFound,
        ),
    ] {
        let (status, headers, body) = send(&app, "POST", path, Some(body), None).await;
        let p = problem(status, &headers, &body);
        assert_eq!((p.status, p.code), (want, code), "{path}: {}", p.detail);
    }
    let (_, _, body) = send(&app, "GET", "/v1/progress", None, None).await;
    assert_eq!(body, b"[]", "nothing refused was kept");

    for error in ["out of memory", "<script>alert(1)</script>"] {
        let (status, _, body) = send(&app, "POST", path, Some(report(seed, error)), None).await;
        assert_eq!(status, StatusCode::CREATED);
        let record: reproml_api::FailureRecord = serde_json::from_slice(&body).unwrap();
        assert_eq!(record.last_error, error);
    }
    let (_, _, body) = send(&app, "GET", "/v1/progress", None, None).await;
    let progress: Vec<reproml_api::VariantProgress> = serde_json::from_slice(&body).unwrap();
    assert_eq!(progress.len(), 1);
    assert_eq!((progress[0].failing, progress[0].failure_reports), (1, 2));
    assert_eq!(
        progress[0].last_error.as_deref(),
        Some("<script>alert(1)</script>")
    );
    let (_, _, body) = send(&app, "GET", "/v1/experiments/e1/failures", None, None).await;
    let failures: Vec<reproml_api::FailureRecord> = serde_json::from_slice(&body).unwrap();
    assert_eq!((failures.len(), failures[0].reports), (1, 2));

    // Labels are the client's: at most 16 variants' worth of failing runs
    // (3 runs each) are kept; a run already kept is still counted.
    let post = |variant: String, run: usize| {
        let body = report(e.seeds[run].get(), "x");
        let path = format!("/v1/experiments/e1/variants/{variant}/runs/{run}/failures");
        let app = &app;
        async move { send(app, "POST", &path, Some(body), None).await.0 }
    };
    for v in 0..16 {
        for run in 0..3 {
            let status = post(format!("v{v}"), run).await;
            let expected = if (v, run) == (15, 2) {
                StatusCode::UNPROCESSABLE_ENTITY // buggy's run 1 took the last row
            } else {
                StatusCode::CREATED
            };
            assert_eq!(status, expected, "v{v} run {run}");
        }
    }
    assert_eq!(post("v0".into(), 0).await, StatusCode::CREATED);
}
