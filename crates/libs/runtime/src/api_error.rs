//! The JSON error every HTTP endpoint answers with: `{"code", "message"}`.
//! The code is one of [`ErrorCode`] — one code per meaning, each with its
//! one HTTP status, listed in docs/operations.md ("HTTP errors"). 5xx
//! bodies say nothing about internals; the cause goes to the log.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use std::fmt;

/// What went wrong, for a client to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 401: no credential, or not one we know (API key, webhook secret,
    /// signature).
    Unauthorized,
    /// 403: a credential we know, refused for this (the Cloud API's
    /// subscription handshake with a wrong verify token).
    Forbidden,
    /// 404: no such thing (or not this account's).
    NotFound,
    /// 405: the path exists; the method is not served (`Allow` lists them).
    MethodNotAllowed,
    /// 415: the body's `Content-Type` is not the one this endpoint takes.
    UnsupportedMediaType,
    /// 413: the body is larger than the configured limit.
    PayloadTooLarge,
    /// 408: the body did not arrive in time.
    RequestTimeout,
    /// 400: the body could not be read off the connection.
    BodyUnreadable,
    /// 400: the body is not what this endpoint takes (not JSON, not the
    /// form, or not the shape: the message says which).
    InvalidBody,
    /// 400: the body is well formed but exceeds a structural limit
    /// (depth, entries, field length).
    LimitExceeded,
    /// 400: a query parameter is missing or invalid (the message names it).
    BadParameter,
    /// 503: a dependency (the database) is down; retry later.
    Unavailable,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RequestTimeout,
        ErrorCode::BodyUnreadable,
        ErrorCode::InvalidBody,
        ErrorCode::LimitExceeded,
        ErrorCode::BadParameter,
        ErrorCode::Unavailable,
    ];

    /// The code's word, as the JSON body carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::BodyUnreadable => "body_unreadable",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::BadParameter => "bad_parameter",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    /// The one HTTP status this code is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::BodyUnreadable
            | ErrorCode::InvalidBody
            | ErrorCode::LimitExceeded
            | ErrorCode::BadParameter => StatusCode::BAD_REQUEST,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// A 503 for a dependency that is down; the sender should retry.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "dependency unavailable");
        ApiError::new(
            ErrorCode::Unavailable,
            "temporarily unavailable, retry later",
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.code.status().as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.code.status())
            .json(serde_json::json!({"code": self.code.as_str(), "message": self.message}))
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// docs/operations.md lists every code once, with its status.
    #[test]
    fn every_code_is_documented_with_its_status() {
        let docs = include_str!("../../../../docs/operations.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{code}` | {} |", code.status().as_u16());
            assert_eq!(
                docs.matches(&row).count(),
                1,
                "docs/operations.md: one row `{row}`"
            );
        }
    }
}
