//! Errors to the wire: the one place an `Error` becomes an HTTP status and a JSON-RPC body.

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use serde_json::value::RawValue;

use crate::error::{Error, Kind};
use crate::http::body::{self, Body};
use crate::jsonrpc::{self, codes};

fn status(kind: Kind) -> StatusCode {
    match kind {
        Kind::Parse | Kind::BadRequest | Kind::HeaderMismatch => StatusCode::BAD_REQUEST,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::SessionNotFound => StatusCode::NOT_FOUND,
        Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Kind::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        Kind::UpstreamUnreachable | Kind::UpstreamProtocol | Kind::Credential => StatusCode::BAD_GATEWAY,
        Kind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        Kind::TooManySessions => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn code(kind: Kind) -> i64 {
    match kind {
        Kind::BadRequest
        | Kind::Forbidden
        | Kind::PayloadTooLarge
        | Kind::MethodNotAllowed
        | Kind::UnsupportedMediaType
        | Kind::NotAcceptable
        | Kind::Conflict => codes::INVALID_REQUEST,

        Kind::Parse => codes::PARSE_ERROR,
        Kind::HeaderMismatch => codes::HEADER_MISMATCH,
        Kind::SessionNotFound => codes::SESSION_NOT_FOUND,
        Kind::UpstreamUnreachable => codes::UPSTREAM_UNAVAILABLE,
        Kind::UpstreamTimeout => codes::UPSTREAM_TIMEOUT,
        Kind::UpstreamProtocol => codes::UPSTREAM_PROTOCOL,
        Kind::Credential => codes::CREDENTIAL_UNAVAILABLE,
        Kind::TooManySessions => codes::SESSION_LIMIT,
        Kind::Internal => -32603,
    }
}

/// The response for `err`, answering the request `id` (null when unknown or not a request).
pub fn error(err: &Error, id: Option<&RawValue>) -> Response<Body> {
    if err.kind == Kind::Internal {
        tracing::error!("internal error: {}", err.message);
    }
    let message = if err.kind == Kind::Internal { "internal error" } else { err.message.as_str() };
    let mut resp = Response::new(body::full(jsonrpc::error_response(id, code(err.kind), message)));
    *resp.status_mut() = status(err.kind);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if err.kind == Kind::MethodNotAllowed {
        resp.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("GET, POST, DELETE, OPTIONS"));
    }
    resp
}
