//! What the dashboard reads beyond the plain records: every variant's
//! progress in one query, an experiment's comparison computed by the same
//! library code as `reproml compare` (never re-implemented in the
//! browser), its figures drawn by the report's plotting code, and the
//! page's own files, embedded in the binary.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use reproml_api::runs_csv::RunSummary;
use reproml_api::{ProblemCode, VariantProgress};
use reproml_report::{CompareOptions, Report};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::{experiment_id, load_experiment, variant_label};
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// Most variants one comparison or figure takes: each pair is a family of
/// tests, and a figure's boxes must stay legible.
pub const MAX_VARIANTS: usize = 12;

/// Most runs of one variant the server compares or draws: the
/// Hodges-Lehmann interval needs every pairwise difference (n² values,
/// 32 MB at this bound). Larger experiments are compared by `reproml
/// compare`, on the user's own machine.
pub const MAX_RUNS_COMPARED: usize = 2_000;

/// The dashboard's files: no build step, no CDN, no inline script, so a
/// strict Content-Security-Policy holds.
const INDEX: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");
const FAVICON: &str = include_str!("../dashboard/favicon.svg");

/// The page may load only its own script and style, talk only to this
/// server, and show figures it fetched (blob: URLs); it cannot be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' blob:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut response = with_policy(
        ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        CSP,
    );
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `response` with its Content-Security-Policy and `nosniff`, so that a
/// browser takes it for what it says it is.
/// A policy the handler set already (the report page's) is kept.
fn with_policy(mut response: Response, policy: &'static str) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(policy));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

pub(crate) async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => page("text/javascript; charset=utf-8", APP_JS),
        "app.css" => page("text/css; charset=utf-8", APP_CSS),
        "favicon.svg" => page("image/svg+xml", FAVICON),
        _ => ApiError::new(
            ProblemCode::RouteNotFound,
            format!("no asset {name:?}; the dashboard has app.js, app.css and favicon.svg"),
        )
        .into_response(),
    }
}

/// Conditional GETs of the API: every answer carries an `ETag` that
/// changes with every write, and a request whose `If-None-Match` holds it
/// is answered `304 Not Modified` without reading anything, so a
/// dashboard can poll every few seconds for almost nothing.
pub(crate) async fn conditional_get(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    if request.method() != axum::http::Method::GET {
        return data_headers(next.run(request).await);
    }
    // Taken before the handler reads: a write in between makes the
    // answer newer than its tag, which only costs one more full answer.
    let tag = match state.entity_tag().await {
        Ok(tag) => tag,
        Err(e) => return e.into_response(),
    };
    let unchanged = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    if unchanged {
        let mut response = axum::http::StatusCode::NOT_MODIFIED.into_response();
        if let Ok(value) = HeaderValue::from_str(&tag) {
            response.headers_mut().insert(header::ETAG, value);
        }
        return response;
    }
    let mut response = data_headers(next.run(request).await);
    if response.status() == axum::http::StatusCode::OK
        && let Ok(value) = HeaderValue::from_str(&tag)
    {
        response.headers_mut().insert(header::ETAG, value);
        // Revalidate every time: the tag is cheap, stale data is not.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

/// The API answers data, never documents: opened directly in a browser
/// (an SVG figure, say), nothing in them may run.
fn data_headers(response: Response) -> Response {
    with_policy(response, "default-src 'none'; sandbox")
}

/// `GET /v1/progress`.
pub(crate) async fn progress(
    State(state): State<AppState>,
) -> ApiResult<axum::Json<Vec<VariantProgress>>> {
    Ok(axum::Json(state.read(|store| Ok(store.progress()?)).await?))
}

/// The query of a comparison or a figure.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompareQuery {
    /// Comma-separated variants, the reference first (default: as
    /// `reproml compare` picks them).
    variants: Option<String>,
    /// Every pair instead of each against the reference.
    #[serde(default)]
    all_pairs: bool,
    /// Significance level.
    alpha: Option<f64>,
    /// Equivalence margin.
    margin: Option<f64>,
    /// Learning curves: every run's own curve too.
    #[serde(default)]
    every_run: bool,
}

impl CompareQuery {
    fn check_levels(&self) -> ApiResult<()> {
        if self.alpha.is_some_and(|a| !(a > 0.0 && a < 0.5)) {
            return Err(ApiError::new(
                ProblemCode::BadQuery,
                "alpha must lie strictly between 0 and 0.5 (e.g. 0.05)",
            ));
        }
        if self.margin.is_some_and(|m| !(m > 0.0 && m.is_finite())) {
            return Err(ApiError::new(
                ProblemCode::BadQuery,
                "margin must be a positive number (e.g. 0.01)",
            ));
        }
        Ok(())
    }

    fn variants(&self) -> ApiResult<Vec<String>> {
        let Some(list) = self.variants.as_deref().filter(|l| !l.is_empty()) else {
            return Ok(Vec::new());
        };
        let variants: Vec<String> = list
            .split(',')
            .map(|v| variant_label(v).map(|v| v.to_string()))
            .collect::<ApiResult<_>>()?;
        if variants.len() > MAX_VARIANTS {
            return Err(ApiError::new(
                ProblemCode::BadQuery,
                format!("at most {MAX_VARIANTS} variants at a time"),
            ));
        }
        Ok(variants)
    }
}

/// The experiment's runs of `variants` (all when empty) as the comparison
/// reads them; a variant without runs is `404 variant_not_found`, one with
/// more than [`MAX_RUNS_COMPARED`] runs `400 bad_query`.
async fn rows(
    state: &AppState,
    id: &str,
    variants: &[String],
) -> ApiResult<(reproml_api::Experiment, Vec<RunSummary>)> {
    let id = experiment_id(id)?;
    let e = load_experiment(state, id.clone()).await?;
    let runs = state.read(move |store| Ok(store.runs(&id, None)?)).await?;
    let policy = e.spec.seed_policy;
    let rows: Vec<RunSummary> = runs
        .iter()
        .filter(|r| variants.is_empty() || variants.iter().any(|v| v == r.variant.as_str()))
        .map(|r| RunSummary::new(r, policy))
        .collect();
    if let Some(missing) = variants
        .iter()
        .find(|v| !rows.iter().any(|r| r.variant.as_str() == v.as_str()))
    {
        return Err(ApiError::new(
            ProblemCode::VariantNotFound,
            format!("experiment {} has no runs of variant {missing}", e.spec.id),
        ));
    }
    let mut per_variant = std::collections::BTreeMap::<&str, usize>::new();
    for r in &rows {
        *per_variant.entry(r.variant.as_str()).or_default() += 1;
    }
    if let Some((v, n)) = per_variant.iter().find(|(_, n)| **n > MAX_RUNS_COMPARED) {
        return Err(ApiError::new(
            ProblemCode::BadQuery,
            format!(
                "variant {v} has {n} runs; the server compares and draws at most {MAX_RUNS_COMPARED} \
                 a variant: use `reproml compare` for this experiment"
            ),
        ));
    }
    Ok((reproml_api::Experiment::clone(&e), rows))
}

fn compared(
    e: &reproml_api::Experiment,
    rows: &[RunSummary],
    query: &CompareQuery,
) -> ApiResult<Report> {
    let variants = query.variants()?;
    if variants.len() == 1 {
        return Err(ApiError::new(
            ProblemCode::BadQuery,
            "variants names at least two, the reference first (e.g. buggy,corrected)",
        ));
    }
    let options = CompareOptions {
        variants,
        all_pairs: query.all_pairs,
        expected_runs: [(e.spec.id.to_string(), e.spec.runs)].into(),
        alpha: query.alpha,
        margin: query.margin,
        ..CompareOptions::default()
    };
    reproml_report::compare(rows, &options)
        .map_err(|err| ApiError::new(ProblemCode::NothingToCompare, err.to_string()))
}

/// A comparison for the dashboard: the report `reproml compare --json`
/// prints, and the verdict lines and legend the terminal and HTML reports
/// show, from the same library code.
#[derive(serde::Serialize)]
pub(crate) struct ComparisonAnswer {
    report: Report,
    verdicts: Vec<String>,
    legend: String,
}

/// `GET /v1/experiments/{id}/comparison`: exactly `reproml compare --json`
/// for this experiment and these variants.
pub(crate) async fn comparison(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<CompareQuery>,
) -> ApiResult<axum::Json<ComparisonAnswer>> {
    query.check_levels()?;
    let (e, rows) = rows(&state, &id, &query.variants()?).await?;
    let _permit = state.heavy_work().await?;
    // Exact tests and intervals: CPU work, off the request threads.
    let report = tokio::task::spawn_blocking(move || compared(&e, &rows, &query))
        .await
        .map_err(ApiError::internal)??;
    Ok(axum::Json(ComparisonAnswer {
        verdicts: reproml_report::verdict_lines(&report),
        legend: reproml_report::legend(&report),
        report,
    }))
}

/// `GET /v1/experiments/{id}/report.html`: the comparison as the HTML
/// report `reproml report` writes, in one self-contained page (figures
/// inline), for the dashboard's download and for reading on its own.
pub(crate) async fn report_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<CompareQuery>,
) -> ApiResult<Response> {
    query.check_levels()?;
    let (e, rows) = rows(&state, &id, &query.variants()?).await?;
    let _permit = state.heavy_work().await?;
    let page = tokio::task::spawn_blocking(move || {
        let report = compared(&e, &rows, &query)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let provenance = reproml_report::Provenance::new(
            &format!("reproml {} server", env!("CARGO_PKG_VERSION")),
            &reproml_core::time::rfc3339_utc(now),
            &rows,
            std::slice::from_ref(&e.spec),
        );
        let title = format!("{}: {}", e.spec.id, report.side_names().join(" vs "));
        reproml_report::report_page(&report, &rows, &title, &provenance).map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)??;
    // A document, unlike the API's other answers: its own style may
    // apply; still nothing may run or load.
    Ok(with_policy(
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response(),
        "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    ))
}

/// The figures an experiment has.
#[derive(Debug, Clone, Copy)]
enum Figure {
    /// Box plots of the final metrics, every run drawn.
    Boxes,
    /// Per-epoch training loss and test accuracy.
    Curves,
}

/// `GET /v1/experiments/{id}/figures/{name}`: `boxes.svg` or `curves.svg`
/// (with `every_run=true`, every run's curve too) of the given variants
/// (default: all, in name order).
pub(crate) async fn figure(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<CompareQuery>,
) -> ApiResult<Response> {
    let figure = match name.as_str() {
        "boxes.svg" => Figure::Boxes,
        "curves.svg" => Figure::Curves,
        _ => {
            return Err(ApiError::new(
                ProblemCode::RouteNotFound,
                format!("no figure {name:?}; there are boxes.svg and curves.svg"),
            ));
        }
    };
    let mut sides = query.variants()?;
    let (_, rows) = rows(&state, &id, &sides).await?;
    if rows.is_empty() {
        return Err(ApiError::new(
            ProblemCode::NothingToCompare,
            format!("experiment {id} has no runs to draw yet"),
        ));
    }
    if sides.is_empty() {
        sides = rows.iter().map(|r| r.variant.to_string()).collect();
        sides.dedup();
        sides.truncate(MAX_VARIANTS);
    }
    let every_run = query.every_run;
    let _permit = state.heavy_work().await?;
    let svg = tokio::task::spawn_blocking(move || {
        let names: Vec<&str> = sides.iter().map(String::as_str).collect();
        match figure {
            Figure::Boxes => reproml_report::experiment_svg(&rows, &names, &names).map(Some),
            Figure::Curves => reproml_report::curves_svg(&rows, &names, &names, every_run),
        }
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?
    .ok_or_else(|| {
        ApiError::new(
            ProblemCode::NothingToCompare,
            format!("the runs of {id} have no per-epoch figures to draw"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
