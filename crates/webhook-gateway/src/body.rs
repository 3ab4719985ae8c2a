//! What every webhook endpoint does before it knows whose hook it is: read
//! the body within the size limit, and find the secret it presents.

use actix_web::{HttpRequest, http::StatusCode, web};
use futures_util::StreamExt;
use runtime::ApiError;
use subtle::ConstantTimeEq;

pub const SECRET_HEADER: &str = "x-webhook-secret";

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("body exceeds {limit} bytes"),
    )
}

/// The whole body, or 413 past `limit` bytes (declared or read).
pub async fn read(
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
            chunk.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The body as JSON, or 400 `invalid_json` saying why.
pub fn json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
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
/// nothing expected never matches.
pub fn secret_matches(presented: Option<&str>, expected: Option<&str>) -> bool {
    match (presented, expected) {
        (Some(p), Some(e)) if !e.is_empty() => bool::from(p.as_bytes().ct_eq(e.as_bytes())),
        _ => false,
    }
}

pub fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}
