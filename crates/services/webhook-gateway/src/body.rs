//! What every webhook endpoint does before it knows whose hook it is: check
//! the content type, read the body within the size limit and the time limit,
//! and find the secret it presents. Nothing here depends on whether the
//! instance or connection exists, so these answers reveal nothing about it.

use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use runtime::ApiError;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// How much and how long a webhook sender may take to send its body.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    /// From the end of the headers to the last byte of the body.
    pub timeout: Duration,
}

/// The media type a webhook's body must declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Form,
}

impl Kind {
    fn media_type(self) -> &'static str {
        match self {
            Kind::Json => "application/json",
            Kind::Form => "application/x-www-form-urlencoded",
        }
    }
}

pub const SECRET_HEADER: &str = "x-webhook-secret";

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        runtime::ErrorCode::PayloadTooLarge,
        format!("body exceeds {limit} bytes"),
    )
}

/// 415 unless the request declares `kind` (parameters such as `charset`
/// allowed; a missing `Content-Type` is refused too).
fn check_content_type(req: &HttpRequest, kind: Kind) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = declared.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case(kind.media_type()) {
        return Ok(());
    }
    Err(ApiError::new(
        runtime::ErrorCode::UnsupportedMediaType,
        format!(
            "Content-Type must be {}, not '{}'",
            kind.media_type(),
            declared.chars().take(100).collect::<String>()
        ),
    ))
}

/// The whole body of a request declaring `kind`: 415 for another content
/// type, 413 past `limits.max_bytes` (declared or read), 408 when the body
/// takes longer than `limits.timeout` to arrive (a slow sender).
pub async fn read(
    req: &HttpRequest,
    payload: web::Payload,
    limits: Limits,
    kind: Kind,
) -> Result<web::Bytes, ApiError> {
    check_content_type(req, kind)?;
    tokio::time::timeout(limits.timeout, read_within(req, payload, limits.max_bytes))
        .await
        .map_err(|_| {
            ApiError::new(
                runtime::ErrorCode::RequestTimeout,
                format!(
                    "the body did not arrive within {} s",
                    limits.timeout.as_secs_f64()
                ),
            )
        })?
}

async fn read_within(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(runtime::ErrorCode::BodyUnreadable, e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The body as JSON, or 400 `invalid_body` saying why.
pub fn json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            runtime::ErrorCode::InvalidBody,
            format!("body is not valid JSON: {e}"),
        )
    })
}

/// The secret in the `X-Webhook-Secret` header, else the one in the query.
pub fn presented_secret(req: &HttpRequest, query_secret: Option<String>) -> Option<String> {
    req.headers()
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query_secret)
}

/// Constant-time equality of a presented secret with the expected one;
/// nothing (or an empty secret) expected never matches.
pub fn secret_matches(presented: Option<&str>, expected: Option<&SecretString>) -> bool {
    match (presented, expected.map(ExposeSecret::expose_secret)) {
        (Some(p), Some(e)) if !e.is_empty() => bool::from(p.as_bytes().ct_eq(e.as_bytes())),
        _ => false,
    }
}

/// 400 for a body over one of `domain::limits`: it names the limit.
pub fn over_limit(e: domain::limits::LimitExceeded) -> ApiError {
    ApiError::new(runtime::ErrorCode::LimitExceeded, e.to_string())
}

pub fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(runtime::ErrorCode::Unauthorized, message)
}

/// The one answer for a hook URL that is not known *or* whose secret is
/// wrong or missing: a caller without the secret learns nothing about which
/// instances or connections exist.
pub fn not_authenticated() -> ApiError {
    unauthorized("unknown hook, or missing or wrong credentials for it")
}
