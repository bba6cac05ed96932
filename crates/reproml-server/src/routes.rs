//! The handlers: small functions from typed requests to typed answers.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use reproml_api::runs_csv::{self, RunSummary};
use reproml_api::{
    Experiment, FailureRecord, Health, ProblemCode, RecordedRun, RunFailure, RunSeed,
};
use reproml_core::run::RunResult;
use reproml_core::split::SplitName;
use reproml_core::{ExperimentId, ExperimentSpec, RunIndex, Seed, VariantLabel};
use reproml_data::serve::{ServeError, encode_records, served_split};
use reproml_data::wire;
use reproml_store::Written;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn experiment_id(raw: &str) -> ApiResult<ExperimentId> {
    ExperimentId::new(raw).map_err(|e| ApiError::new(ProblemCode::BadIdentifier, e.to_string()))
}

pub(crate) fn variant_label(raw: &str) -> ApiResult<VariantLabel> {
    VariantLabel::new(raw).map_err(|e| ApiError::new(ProblemCode::BadIdentifier, e.to_string()))
}

/// A run of the experiment, with its seed under the experiment's policy.
fn run_index(raw: &str, experiment: &Experiment) -> ApiResult<(RunIndex, Seed)> {
    let run: RunIndex = raw.parse().map_err(|_| {
        ApiError::new(
            ProblemCode::BadRunIndex,
            format!(
                "run index {raw:?} is not a whole number from 0 to {}",
                u32::MAX
            ),
        )
    })?;
    let seed = experiment.run_seed(run).ok_or_else(|| {
        ApiError::new(
            ProblemCode::RunNotFound,
            format!(
                "experiment {} has runs 0 to {}; there is no run {run}",
                experiment.spec.id,
                experiment.spec.runs.saturating_sub(1)
            ),
        )
    })?;
    Ok((run, seed))
}

pub(crate) async fn load_experiment(
    state: &AppState,
    id: ExperimentId,
) -> ApiResult<Arc<Experiment>> {
    // A cached experiment is checked against its row (one primary-key
    // read, not its seeds): another process sharing the database may have
    // deleted or re-created it.
    let (cached, generation) = match state.cached_experiment(&id) {
        Ok((e, stamp)) => (Some((e, stamp)), None),
        Err(generation) => (None, Some(generation)),
    };
    let key = id.clone();
    let (fresh, stamp) = state
        .read(move |store| {
            let stamp = store.experiment_stamp(&key)?;
            match (&cached, &stamp) {
                (Some((e, was)), Some(now)) if was == now => Ok((Err(e.clone()), stamp)),
                (_, None) => Ok((Ok(None), stamp)),
                _ => Ok((Ok(store.experiment(&key)?), stamp)),
            }
        })
        .await?;
    let not_found = || {
        ApiError::new(
            ProblemCode::ExperimentNotFound,
            format!("no experiment {id}; create it with POST /v1/experiments"),
        )
    };
    match (fresh, stamp) {
        (Err(still_valid), _) => Ok(still_valid),
        (Ok(Some(e)), Some(stamp)) => {
            let generation = generation.unwrap_or_else(|| {
                // Replaced under a cached entry: forget it, then cache anew.
                state.forget_experiment(&id);
                state.cached_experiment(&id).err().unwrap_or_default()
            });
            Ok(state.cache_experiment(e, stamp, generation))
        }
        _ => {
            if generation.is_none() {
                state.forget_experiment(&id); // it was cached: deleted since
            }
            Err(not_found())
        }
    }
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
    // The health check, the API's description and the dashboard's page
    // and files are open (they hold no data); the API calls the page
    // makes still need the token.
    let path = request.uri().path();
    if matches!(path, "/v1/health" | "/" | "/openapi.json") || path.starts_with("/assets/") {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        });
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => {
            ApiError::new(ProblemCode::BadToken, "the bearer token is wrong").into_response()
        }
        None => ApiError::new(
            ProblemCode::MissingToken,
            "this server requires `Authorization: Bearer <token>`",
        )
        .into_response(),
    }
}

/// Compares without an early exit, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api: reproml_api::API_VERSION.into(),
    })
}

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI)
}

pub(crate) async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        ProblemCode::RouteNotFound,
        format!("no route {}; see /openapi.json", request.uri().path()),
    )
}

pub(crate) async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        ProblemCode::MethodNotAllowed,
        format!(
            "{} is not allowed on {}; see /openapi.json",
            request.method(),
            request.uri().path()
        ),
    )
}

pub(crate) async fn create_experiment(
    State(state): State<AppState>,
    ApiJson(spec): ApiJson<ExperimentSpec>,
) -> ApiResult<Response> {
    if let Err(violations) = spec.validate() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        return Err(
            ApiError::new(ProblemCode::InvalidSpec, list.join("; ")).with("violations", list)
        );
    }
    let registered = state
        .read(|store| {
            Ok(store
                .datasets()?
                .into_iter()
                .map(|d| d.name)
                .collect::<Vec<_>>())
        })
        .await?;
    let names: Vec<&str> = registered.iter().map(String::as_str).collect();
    if let Err(violations) = spec.check_names(&names) {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        return Err(
            ApiError::new(ProblemCode::InvalidSpec, list.join("; ")).with("violations", list)
        );
    }
    let (stored, written) = state
        .write(move |store| Ok(store.create_experiment(&spec)?))
        .await?;
    let status = match written {
        Written::Created => StatusCode::CREATED,
        Written::Existing => StatusCode::OK,
    };
    Ok((status, axum::Json(stored)).into_response())
}

fn check_may_delete(state: &AppState) -> ApiResult<()> {
    if state.may_delete() {
        Ok(())
    } else {
        Err(ApiError::new(
            ProblemCode::DeleteForbidden,
            "deleting is off on a server without a token; restart it with --token-file (and send the token) or with --allow-delete",
        ))
    }
}

/// `DELETE /v1/experiments/{id}`: the experiment, its seeds and every run.
pub(crate) async fn delete_experiment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_may_delete(&state)?;
    let id = experiment_id(&id)?;
    // On a task of its own: once queued, the delete commits even if this
    // request is dropped, and the cache must then forget the experiment.
    let deleted = {
        let (id, state) = (id.clone(), state.clone());
        tokio::spawn(async move {
            let key = id.clone();
            let deleted = state
                .write(move |store| Ok(store.delete_experiment(&key)?))
                .await;
            state.forget_experiment(&id);
            deleted
        })
        .await
        .map_err(ApiError::internal)??
    };
    let runs = deleted.ok_or_else(|| {
        ApiError::new(
            ProblemCode::ExperimentNotFound,
            format!("no experiment {id}"),
        )
    })?;
    tracing::warn!(experiment = %id, runs, "experiment deleted");
    Ok(axum::Json(json!({ "experiment": id, "deleted_runs": runs })).into_response())
}

/// `DELETE /v1/experiments/{id}/variants/{variant}`: the variant's runs, so
/// that its name can be used again.
pub(crate) async fn delete_variant(
    State(state): State<AppState>,
    Path((id, variant)): Path<(String, String)>,
) -> ApiResult<Response> {
    check_may_delete(&state)?;
    let e = load_experiment(&state, experiment_id(&id)?).await?;
    let variant = variant_label(&variant)?;
    let id = e.spec.id.clone();
    let deleted = {
        let (id, variant) = (id.clone(), variant.clone());
        state
            .write(move |store| Ok(store.delete_variant(&id, &variant)?))
            .await?
    };
    let runs = deleted.ok_or_else(|| {
        ApiError::new(
            ProblemCode::VariantNotFound,
            format!("experiment {id} has no variant {variant}"),
        )
    })?;
    tracing::warn!(experiment = %id, %variant, runs, "variant deleted");
    Ok(
        axum::Json(json!({ "experiment": id, "variant": variant, "deleted_runs": runs }))
            .into_response(),
    )
}

pub(crate) async fn list_experiments(
    State(state): State<AppState>,
) -> ApiResult<axum::Json<Vec<Experiment>>> {
    let all = state.read(|store| Ok(store.experiments()?)).await?;
    Ok(axum::Json(all))
}

pub(crate) async fn get_experiment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Experiment>> {
    let e = load_experiment(&state, experiment_id(&id)?).await?;
    Ok(axum::Json(Experiment::clone(&e)))
}

pub(crate) async fn get_seed(
    State(state): State<AppState>,
    Path((id, run)): Path<(String, String)>,
) -> ApiResult<axum::Json<RunSeed>> {
    let e = load_experiment(&state, experiment_id(&id)?).await?;
    let (run, seed) = run_index(&run, &e)?;
    let split_seed = e
        .split_seed()
        .ok_or_else(|| ApiError::internal(format!("experiment {} has no seeds", e.spec.id)))?;
    Ok(axum::Json(RunSeed {
        experiment: e.spec.id.clone(),
        run,
        seed,
        seed_policy: e.spec.seed_policy,
        split_seed,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DataQuery {
    seed: Seed,
}

pub(crate) async fn get_split(
    State(state): State<AppState>,
    Path((id, run, split)): Path<(String, String, String)>,
    ApiQuery(query): ApiQuery<DataQuery>,
    request_headers: HeaderMap,
) -> ApiResult<Response> {
    let version = wire::Version::for_accept(
        request_headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let e = load_experiment(&state, experiment_id(&id)?).await?;
    let (run, seed) = run_index(&run, &e)?;
    let split_name: SplitName = split
        .parse()
        .map_err(|m: String| ApiError::new(ProblemCode::SplitNotFound, m))?;
    if query.seed != seed {
        return Err(ApiError::new(
            ProblemCode::SeedMismatch,
            format!(
                "run {run} of experiment {} has seed {seed}, not {}; fetch the seed from /v1/experiments/{}/runs/{run}/seed",
                e.spec.id, query.seed, e.spec.id
            ),
        ));
    }
    let loaded = state.dataset(e.spec.challenge.as_str()).await?;
    let split_seed = e
        .split_seed()
        .ok_or_else(|| ApiError::internal(format!("experiment {} has no seeds", e.spec.id)))?;
    let (header, indices) = served_split(
        &loaded.dataset,
        &loaded.facts,
        &e.spec,
        (split_seed, seed),
        run,
        split_name,
    )
    .map_err(|err| match err {
        ServeError::NoOfficialSplit => ApiError::new(
            ProblemCode::NoOfficialSplit,
            format!(
                "challenge {} has no official split; use method = \"fractions\"",
                e.spec.challenge
            ),
        ),
        ServeError::Impossible(err) => ApiError::new(ProblemCode::SplitImpossible, err.to_string()),
    })?;
    let shape = loaded.dataset.shape;
    let (head, encoder) = wire::begin(&header, version);
    let length = wire::encoded_len(
        version,
        head.len(),
        indices.len(),
        version.record_pixels(shape),
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        if tx.blocking_send(Ok(head)).is_err() {
            return;
        }
        for chunk in encode_records(&loaded.dataset, &indices, encoder) {
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
        HeaderValue::from_static(version.media_type()),
    );
    // Known in advance, so no chunked transfer encoding on top of ours.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    // The form (pixels or indices only) follows the request's Accept.
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(response)
}

pub(crate) async fn post_result(
    State(state): State<AppState>,
    Path((id, variant, run)): Path<(String, String, String)>,
    ApiJson(mut result): ApiJson<RunResult>,
) -> ApiResult<Response> {
    let e = load_experiment(&state, experiment_id(&id)?).await?;
    let variant = variant_label(&variant)?;
    let (run, seed) = run_index(&run, &e)?;
    if result.seed != seed {
        return Err(ApiError::new(
            ProblemCode::SeedMismatch,
            format!(
                "run {run} has seed {seed}, but the result says {}; it was trained with the wrong seed",
                result.seed
            ),
        ));
    }
    // Stored metrics are the ones the confusion matrices give, computed
    // here by the one implementation: two engines that agree on every
    // prediction then agree on every bit of every metric.
    if let Err(problems) = result
        .validate(e.spec.epochs)
        .and_then(|()| result.canonicalize())
    {
        return Err(
            ApiError::new(ProblemCode::InvalidResult, problems.join("; "))
                .with("violations", problems),
        );
    }
    let id = e.spec.id.clone();
    let (stored, written) = state
        .write(move |store| Ok(store.record_run(&id, &variant, run, &result)?))
        .await?;
    let status = match written {
        Written::Created => StatusCode::CREATED,
        Written::Existing => StatusCode::OK,
    };
    Ok((status, axum::Json(stored)).into_response())
}

/// How many variants' worth of failing runs an experiment keeps.
const MAX_FAILING_SIDES: u64 = 16;

/// `POST …/variants/{variant}/runs/{run}/failures`: a failed attempt at
/// a run, counted and kept as the run's latest error so that the dashboard
/// shows it. Not idempotent: each report counts.
pub(crate) async fn post_failure(
    State(state): State<AppState>,
    Path((id, variant, run)): Path<(String, String, String)>,
    ApiJson(failure): ApiJson<RunFailure>,
) -> ApiResult<Response> {
    let e = load_experiment(&state, experiment_id(&id)?).await?;
    let variant = variant_label(&variant)?;
    let (run, seed) = run_index(&run, &e)?;
    if failure.seed != seed {
        return Err(ApiError::new(
            ProblemCode::SeedMismatch,
            format!(
                "run {run} has seed {seed}, but the failure report says {}",
                failure.seed
            ),
        ));
    }
    let problems = failure.problems();
    if !problems.is_empty() {
        return Err(
            ApiError::new(ProblemCode::InvalidFailure, problems.join("; "))
                .with("violations", problems),
        );
    }
    // One row per failing run, but the variant label is the client's:
    // bound the rows an experiment can gather.
    let limit = u64::from(e.spec.runs) * MAX_FAILING_SIDES;
    let id = e.spec.id.clone();
    let stored = state
        .write(move |store| {
            let new_row = store.failures(&id, Some((&variant, run)))?.is_empty();
            if new_row && store.failing_runs(&id)? >= limit {
                return Ok(None);
            }
            Ok(Some(store.record_failure(&id, &variant, run, &failure.error)?))
        })
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ProblemCode::InvalidFailure,
                format!(
                    "experiment {} already keeps failure reports of {limit} runs ({MAX_FAILING_SIDES} \
                     variants' worth); delete the variants that are not wanted",
                    e.spec.id
                ),
            )
        })?;
    tracing::info!(experiment = %stored.experiment, variant = %stored.variant, run = %stored.run,
        reports = stored.reports, "run failure reported");
    Ok((StatusCode::CREATED, axum::Json(stored)).into_response())
}

/// `GET /v1/experiments/{id}/failures`: every run's failure reports.
pub(crate) async fn list_failures(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<FailureRecord>>> {
    let e = load_experiment(&state, experiment_id(&id)?).await?;
    let id = e.spec.id.clone();
    let failures = state
        .read(move |store| Ok(store.failures(&id, None)?))
        .await?;
    Ok(axum::Json(failures))
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
        .read(move |store| Ok(store.runs(&id, variant.as_ref())?))
        .await?;
    match query.format.as_deref() {
        None | Some("json") => Ok(axum::Json::<Vec<RecordedRun>>(runs).into_response()),
        Some("csv") => {
            let rows: Vec<RunSummary> = runs
                .iter()
                .map(|r| RunSummary::new(r, e.spec.seed_policy))
                .collect();
            let text = runs_csv::write(&rows).map_err(ApiError::internal)?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response())
        }
        Some(other) => Err(ApiError::new(
            ProblemCode::BadFormat,
            format!("unknown format {other:?}; use json or csv"),
        )),
    }
}

/// Bytes per piece of a data set's content on the wire: the channel
/// between the copying thread and the socket holds four of them.
const CONTENT_PIECE_BYTES: usize = 1 << 20;

/// `GET /v1/datasets/{digest}/content`: the data set's content, whose
/// SHA-256 is the digest, so that a client can cache it under that name and
/// verify it end to end (`docs/protocol.md` §8, "Indices only, and a data set's content").
pub(crate) async fn get_dataset_content(
    State(state): State<AppState>,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    if !wire::is_digest(&digest) {
        return Err(ApiError::new(
            ProblemCode::BadIdentifier,
            "a data set digest is 64 lowercase hexadecimal digits (SHA-256), as split headers give it",
        ));
    }
    let loaded = state.dataset_by_digest(&digest).await?;
    let length = loaded.dataset.content_len();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let data = &loaded.dataset;
        let head = std::iter::once(data.content_head());
        let labels = data.labels.chunks(CONTENT_PIECE_BYTES).map(<[u8]>::to_vec);
        let pixels = data.pixels.chunks(CONTENT_PIECE_BYTES).map(<[u8]>::to_vec);
        for piece in head.chain(labels).chain(pixels) {
            if tx.blocking_send(Ok(piece)).is_err() {
                return; // the client went away
            }
        }
    });
    let mut response = Response::new(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reproml_data::CONTENT_MEDIA_TYPE),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

pub(crate) async fn list_datasets(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let registered = state.read(|store| Ok(store.datasets()?)).await?;
    Ok(axum::Json(
        json!({ "builtin": reproml_core::spec::BUILTIN_CHALLENGES, "registered": registered }),
    ))
}
