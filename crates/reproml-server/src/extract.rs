//! Extractors that turn every rejection into a problem response.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use reproml_api::ProblemCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// How large a request body may be and how long it may take to arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyRules {
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// Refuses, before any byte of the body is read (so before hyper sends
/// `100 Continue`), a body whose `Content-Length` is over the limit (413)
/// and an `Expect` the server cannot meet (417); hands the body rules to
/// the extractors.
pub(crate) async fn body_rules(
    State(rules): State<BodyRules>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(expect) = request.headers().get(header::EXPECT)
        && !expect.as_bytes().eq_ignore_ascii_case(b"100-continue")
    {
        return ApiError::new(
            ProblemCode::ExpectationFailed,
            "the only expectation this server meets is `Expect: 100-continue`",
        )
        .into_response();
    }
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = announced
        && length > rules.max_bytes as u64
    {
        return ApiError::new(
            ProblemCode::BodyTooLarge,
            format!(
                "the body announces {length} bytes; at most {} are accepted",
                rules.max_bytes
            ),
        )
        .into_response();
    }
    request.extensions_mut().insert(rules);
    next.run(request).await
}

/// `axum::Json` with problem-details rejections, and a time limit on the
/// body's arrival (so a client that announces a body and never sends it
/// does not hold a request for the whole handling limit).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyRules>()
            .map_or(Duration::from_secs(30), |r| r.timeout);
        // While the body has not arrived, the connection may be evicted
        // for a newcomer (see `connections`).
        let _waiting = req
            .extensions()
            .get::<crate::connections::BodyWait>()
            .map(crate::connections::BodyWait::enter);
        match tokio::time::timeout(limit, axum::Json::<T>::from_request(req, state)).await {
            Ok(Ok(axum::Json(value))) => Ok(Self(value)),
            Ok(Err(rejection)) => Err(json_rejection(rejection)),
            Err(_) => Err(ApiError::new(
                ProblemCode::BodyTimeout,
                format!(
                    "the request body did not arrive within {} s; send it whole, right after the head",
                    limit.as_secs()
                ),
            )),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::new(ProblemCode::InvalidBody, detail),
        JsonRejection::JsonSyntaxError(_) => ApiError::new(ProblemCode::MalformedJson, detail),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ProblemCode::UnsupportedMediaType,
            "send the body as JSON with `Content-Type: application/json`",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ProblemCode::BodyTooLarge,
            format!(
                "the request body is larger than the server accepts: {}",
                other.body_text()
            ),
        ),
        other => ApiError::new(ProblemCode::BadBody, other.body_text()),
    }
}

/// `axum::extract::Query` with problem-details rejections.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::new(ProblemCode::BadQuery, e.body_text()))
    }
}
