//! The handlers: small functions from typed requests to typed answers.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use reproml_core::run::RunResult;
use reproml_core::split::SplitName;
use reproml_core::{ExperimentId, ExperimentSpec, RunIndex, VariantLabel};
use reproml_data::serve::{ServeError, encode_records, served_indices};
use reproml_data::wire::{self, SplitHeader};
use reproml_store::{StoredExperiment, Written};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

fn experiment_id(raw: &str) -> ApiResult<ExperimentId> {
    ExperimentId::new(raw).map_err(|e| ApiError::bad_request("bad_identifier", e.to_string()))
}

fn variant_label(raw: &str) -> ApiResult<VariantLabel> {
    VariantLabel::new(raw).map_err(|e| ApiError::bad_request("bad_identifier", e.to_string()))
}

fn run_index(raw: &str, experiment: &StoredExperiment) -> ApiResult<RunIndex> {
    let run: RunIndex = raw.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_run_index",
            format!(
                "run index {raw:?} is not a whole number from 0 to {}",
                u32::MAX
            ),
        )
    })?;
    if run >= experiment.spec.runs {
        return Err(ApiError::not_found(
            "run_not_found",
            format!(
                "experiment {} has runs 0 to {}; there is no run {run}",
                experiment.spec.id,
                experiment.spec.runs - 1
            ),
        ));
    }
    Ok(run)
}

/// The seed of a validated run under the experiment's seed policy.
fn run_seed(e: &StoredExperiment, run: RunIndex) -> u64 {
    e.seeds[e.spec.seed_policy.seed_index(run) as usize]
}

async fn load_experiment(state: &AppState, id: ExperimentId) -> ApiResult<StoredExperiment> {
    state
        .with_store(move |store| {
            store.experiment(&id)?.ok_or_else(|| {
                ApiError::not_found(
                    "experiment_not_found",
                    format!("no experiment {id}; create it with POST /v1/experiments"),
                )
            })
        })
        .await
}

/// Requires the bearer token on everything but the health check.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = state.token() else {
        return next.run(request).await;
    };
    // The health check and the dashboard page itself are open; the API
    // calls the page makes still need the token.
    if matches!(request.uri().path(), "/v1/health" | "/") {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "the bearer token is wrong",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "this server requires `Authorization: Bearer <token>`",
        )
        .into_response(),
    }
}

/// Compares without an early exit, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"), "api": "v1" }))
}

pub(crate) async fn dashboard() -> impl IntoResponse {
    axum::response::Html(crate::DASHBOARD)
}

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI)
}

pub(crate) async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(
        "route_not_found",
        format!("no route {}; see /openapi.json", request.uri().path()),
    )
}

pub(crate) async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; see /openapi.json",
            request.method(),
            request.uri().path()
        ),
    )
}

/// An experiment as the API shows it.
#[derive(Serialize)]
struct ExperimentView {
    #[serde(flatten)]
    spec: ExperimentSpec,
    seeds: Vec<u64>,
    created_at: String,
}

impl From<StoredExperiment> for ExperimentView {
    fn from(e: StoredExperiment) -> Self {
        Self {
            spec: e.spec,
            seeds: e.seeds,
            created_at: e.created_at,
        }
    }
}

pub(crate) async fn create_experiment(
    State(state): State<AppState>,
    ApiJson(spec): ApiJson<ExperimentSpec>,
) -> ApiResult<Response> {
    if let Err(violations) = spec.validate() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_spec",
            list.join("; "),
        )
        .with(json!({ "violations": list })));
    }
    let (stored, written) = state
        .with_store(move |store| Ok(store.create_experiment(&spec)?))
        .await?;
    let status = match written {
        Written::Created => StatusCode::CREATED,
        Written::Existing => StatusCode::OK,
    };
    Ok((status, axum::Json(ExperimentView::from(stored))).into_response())
}

pub(crate) async fn list_experiments(
    State(state): State<AppState>,
) -> ApiResult<impl IntoResponse> {
    let all = state.with_store(|store| Ok(store.experiments()?)).await?;
    Ok(axum::Json(
        all.into_iter()
            .map(ExperimentView::from)
            .collect::<Vec<_>>(),
    ))
}

pub(crate) async fn get_experiment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let e = load_experiment(&state, experiment_id(&id)?).await?;
    Ok(axum::Json(ExperimentView::from(e)))
}

pub(crate) async fn get_seed(
    State(state): State<AppState>,
    Path((id, run)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let e = load_experiment(&state, experiment_id(&id)?).await?;
    let run = run_index(&run, &e)?;
    let seed = run_seed(&e, run);
    Ok(axum::Json(json!({
        "experiment": e.spec.id,
        "run": run,
        "seed": seed,
        "seed_policy": e.spec.seed_policy,
        "split_seed": e.seeds[0],
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DataQuery {
    seed: u64,
}

pub(crate) async fn get_split(
    State(state): State<AppState>,
    Path((id, run, split)): Path<(String, String, String)>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> ApiResult<Response> {
    let e = load_experiment(&state, experiment_id(&id)?).await?;
    let run = run_index(&run, &e)?;
    let split_name: SplitName = split
        .parse()
        .map_err(|m: String| ApiError::not_found("split_not_found", m))?;
    let seed = run_seed(&e, run);
    if query.seed != seed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "seed_mismatch",
            format!(
                "run {run} of experiment {} has seed {seed}, not {}; fetch the seed from /v1/experiments/{}/runs/{run}/seed",
                e.spec.id, query.seed, e.spec.id
            ),
        ));
    }
    let loaded = state.dataset(e.spec.challenge.as_str()).await?;
    let data = &loaded.dataset;
    let (indices, order) =
        served_indices(data, &e.spec, e.seeds[0], seed, split_name).map_err(|err| match err {
            ServeError::NoOfficialSplit => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_official_split",
                format!(
                    "challenge {} has no official split; use method = \"fractions\"",
                    e.spec.challenge
                ),
            ),
            ServeError::Impossible(err) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "split_impossible",
                err.to_string(),
            ),
        })?;
    let header = SplitHeader {
        experiment: e.spec.id.to_string(),
        run,
        split: split_name.to_string(),
        seed,
        examples: indices.len() as u32,
        shape: data.shape,
        classes: data.classes,
        normalization: loaded.normalization.clone(),
        dataset_digest: loaded.digest.clone(),
        order: order.into(),
    };
    let head = wire::encode_header(&header);
    let length = wire::encoded_len(head.len(), indices.len(), data.shape.pixels());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        if tx.blocking_send(Ok(head)).is_err() {
            return;
        }
        for chunk in encode_records(&loaded.dataset, &indices) {
            if tx.blocking_send(Ok(chunk)).is_err() {
                return; // the client went away
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(wire::MEDIA_TYPE),
    );
    // Known in advance, so no chunked transfer encoding on top of ours.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

/// A recorded run as the API shows it.
#[derive(Serialize)]
struct RunView {
    experiment: ExperimentId,
    variant: VariantLabel,
    run: RunIndex,
    recorded_at: String,
    #[serde(flatten)]
    result: RunResult,
}

impl From<reproml_store::StoredRun> for RunView {
    fn from(r: reproml_store::StoredRun) -> Self {
        Self {
            experiment: r.experiment,
            variant: r.variant,
            run: r.run,
            recorded_at: r.recorded_at,
            result: r.result,
        }
    }
}

pub(crate) async fn post_result(
    State(state): State<AppState>,
    Path((id, variant, run)): Path<(String, String, String)>,
    ApiJson(result): ApiJson<RunResult>,
) -> ApiResult<Response> {
    let e = load_experiment(&state, experiment_id(&id)?).await?;
    let variant = variant_label(&variant)?;
    let run = run_index(&run, &e)?;
    let seed = run_seed(&e, run);
    if result.seed != seed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "seed_mismatch",
            format!(
                "run {run} has seed {seed}, but the result says {}; it was trained with the wrong seed",
                result.seed
            ),
        ));
    }
    if let Err(problems) = result.validate(e.spec.epochs) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_result",
            problems.join("; "),
        )
        .with(json!({ "violations": problems })));
    }
    let id = e.spec.id;
    let (stored, written) = state
        .with_store(move |store| Ok(store.record_run(&id, &variant, run, &result)?))
        .await?;
    let status = match written {
        Written::Created => StatusCode::CREATED,
        Written::Existing => StatusCode::OK,
    };
    Ok((status, axum::Json(RunView::from(stored))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    variant: Option<String>,
    format: Option<String>,
}

pub(crate) async fn list_runs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> ApiResult<Response> {
    let id = experiment_id(&id)?;
    let variant = query.variant.as_deref().map(variant_label).transpose()?;
    let e = load_experiment(&state, id.clone()).await?;
    let runs = state
        .with_store(move |store| Ok(store.runs(&id, variant.as_ref())?))
        .await?;
    match query.format.as_deref() {
        None | Some("json") => {
            Ok(axum::Json(runs.into_iter().map(RunView::from).collect::<Vec<_>>()).into_response())
        }
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            runs_csv(&e, &runs),
        )
            .into_response()),
        Some(other) => Err(ApiError::bad_request(
            "bad_format",
            format!("unknown format {other:?}; use json or csv"),
        )),
    }
}

/// One line per run: the columns `reproml compare` reads.
fn runs_csv(e: &StoredExperiment, runs: &[reproml_store::StoredRun]) -> String {
    let mut out = String::from(
        "experiment,variant,run,seed,seed_policy,accuracy,precision,recall,f1,final_digest,artifact,recorded_at\n",
    );
    for r in runs {
        let m = &r.result.metrics;
        let fields = [
            r.experiment.to_string(),
            r.variant.to_string(),
            r.run.to_string(),
            r.result.seed.to_string(),
            e.spec.seed_policy.as_str().to_string(),
            m.accuracy.to_string(),
            m.precision.to_string(),
            m.recall.to_string(),
            m.f1.to_string(),
            r.result.final_digest().unwrap_or_default().to_string(),
            csv_field(&r.result.artifact.name),
            r.recorded_at.clone(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// Quotes a free-text CSV field (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

pub(crate) async fn list_datasets(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let registered = state.with_store(|store| Ok(store.datasets()?)).await?;
    Ok(axum::Json(
        json!({ "builtin": ["digits", "fashion-mnist"], "registered": registered }),
    ))
}
