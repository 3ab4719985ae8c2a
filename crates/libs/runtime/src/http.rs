//! What every service's HTTP answers carry, and how paths are declared so
//! that a method a path does not serve is told so.
//!
//! Every response gets the security headers below unless its handler set
//! its own (the dashboard sets a CSP that allows its one inline style):
//! nothing here needs a script, a frame, a referrer or a cache.

use crate::ApiError;
use actix_web::{HttpResponse, Resource, middleware::DefaultHeaders, web};

/// No script, style, image, frame or form target from anywhere, and no
/// page of ours in anyone's frame (JSON and metrics need none of them).
pub const CSP_NONE: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CSP_NONE))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
}

/// A path whose other methods get 405 `{code, message}` with `Allow`
/// (actix would answer 404, as for a path that does not exist).
/// `allow` lists the methods the routes added to it serve, e.g. `"GET, POST"`.
pub fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        let mut answer = actix_web::ResponseError::error_response(&ApiError::new(
            crate::ErrorCode::MethodNotAllowed,
            format!("this path serves {allow}"),
        ));
        answer.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(allow),
        );
        Ok::<HttpResponse, actix_web::Error>(answer)
    }))
}
