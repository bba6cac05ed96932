//! Errors as the API reports them: RFC 9457 problem details
//! (`application/problem+json`) with a stable, machine-readable `code`
//! from [`ProblemCode`], whose status is fixed by the code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reproml_api::{Problem, ProblemCode};
use reproml_store::StoreError;
use serde_json::{Map, Value, json};

/// A problem to report to the client.
#[derive(Debug)]
pub struct ApiError {
    /// Stable code clients can match on; it fixes the HTTP status.
    pub code: ProblemCode,
    /// What went wrong and what to do.
    pub detail: String,
    /// More fields for the problem object.
    pub extra: Map<String, Value>,
    /// Seconds after which to try again (`Retry-After`), for a busy server.
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// A problem with a code and a detail.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    /// The database is held by another process (a backup, `data import`,
    /// the `sqlite3` shell) beyond the busy timeout: try again shortly.
    pub(crate) fn busy() -> Self {
        tracing::warn!("the database is locked by another connection; answering 503");
        Self {
            retry_after: Some(1),
            ..Self::new(
                ProblemCode::ServerBusy,
                "the database is held by another process; try again in a second",
            )
        }
    }

    /// Adds a field to the problem object.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// A fault of the server. The cause goes to the server's log, never to
    /// the client: it may name files, SQL or internals.
    pub(crate) fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "request failed inside the server");
        Self::new(
            ProblemCode::Internal,
            "the server failed on this request; its log has the cause. Try again, or report it",
        )
    }

    /// The HTTP status of the problem.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut problem = Problem::new(
            self.code,
            status.canonical_reason().unwrap_or("Error"),
            self.detail,
        );
        problem.extra = self.extra;
        let body = serde_json::to_string(&problem).unwrap_or_else(|_| {
            // Unreachable in practice (a map of JSON values always
            // serialises); still answer with a well-formed problem.
            format!(r#"{{"status":{},"code":"{}"}}"#, status.as_u16(), self.code)
        });
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_busy() {
            return ApiError::busy();
        }
        if e.is_missing_parent() {
            return ApiError::new(
                ProblemCode::ExperimentNotFound,
                "the experiment was deleted while this request was under way",
            );
        }
        match e {
            StoreError::ExperimentConflict {
                ref differences, ..
            } => {
                let differences = differences.clone();
                ApiError::new(ProblemCode::ExperimentConflict, e.to_string())
                    .with("differences", differences)
            }
            StoreError::ResultConflict { .. } => {
                ApiError::new(ProblemCode::ResultConflict, e.to_string())
            }
            StoreError::ArtifactConflict {
                ref recorded,
                ref given,
                ..
            } => {
                let (recorded, given) = (json!(recorded), json!(given));
                ApiError::new(ProblemCode::ArtifactConflict, e.to_string())
                    .with("recorded_artifact", recorded)
                    .with("given_artifact", given)
            }
            StoreError::FingerprintConflict {
                ref differences, ..
            } => {
                let differences = differences.clone();
                ApiError::new(ProblemCode::ArtifactConflict, e.to_string())
                    .with("differences", differences)
            }
            other => ApiError::internal(other),
        }
    }
}

/// The answer to a handler's panic: the message goes to the log only.
pub(crate) fn panic_response(cause: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::internal(format_args!("a handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panic_is_a_500_problem_without_its_text() {
        let app = axum::Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    if true {
                        panic!("secret path /home/x/db");
                    }
                    ""
                }),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                panic_response,
            ));
        let response = app
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: Problem = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem.code, ProblemCode::Internal);
        assert!(!String::from_utf8_lossy(&body).contains("secret"));
    }
}
