//! Errors to the wire: the one place an `Error` becomes an HTTP status and a JSON-RPC error —
//! as an HTTP response (`error`), as a message (`message`, for a stream or a child's stdin), or
//! as the error member of an answer the gateway passes on (`answer`).

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::error::{Error, Kind};
use crate::http::body::{self, Body};
use crate::jsonrpc::codes;

fn status(kind: Kind) -> StatusCode {
    match kind {
        Kind::Parse
        | Kind::BadRequest
        | Kind::HeaderMismatch
        | Kind::InvalidParams
        | Kind::UnsupportedVersion
        | Kind::MissingCapability => StatusCode::BAD_REQUEST,
        Kind::MethodNotFound => StatusCode::NOT_FOUND,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::SessionNotFound => StatusCode::NOT_FOUND,
        Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Kind::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        Kind::UpstreamUnreachable | Kind::UpstreamProtocol | Kind::Credential | Kind::Server(_) => {
            StatusCode::BAD_GATEWAY
        }
        Kind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        Kind::TooManySessions => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
        // A JSON-RPC error like a server's: the client is to act on its data, not drop the session.
        Kind::SignInRequired => StatusCode::OK,
        Kind::InsufficientScope => StatusCode::FORBIDDEN,
        Kind::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Internal | Kind::Unanswered => StatusCode::INTERNAL_SERVER_ERROR,
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
        | Kind::Conflict
        | Kind::Unauthenticated
        | Kind::InsufficientScope => codes::INVALID_REQUEST,

        Kind::Parse => codes::PARSE_ERROR,
        Kind::HeaderMismatch => codes::HEADER_MISMATCH,
        Kind::UnsupportedVersion => codes::UNSUPPORTED_VERSION,
        Kind::MissingCapability => codes::MISSING_CAPABILITY,
        Kind::SessionNotFound => codes::SESSION_NOT_FOUND,
        Kind::UpstreamUnreachable => codes::UPSTREAM_UNAVAILABLE,
        Kind::UpstreamTimeout => codes::UPSTREAM_TIMEOUT,
        Kind::UpstreamProtocol => codes::UPSTREAM_PROTOCOL,
        Kind::Credential => codes::CREDENTIAL_UNAVAILABLE,
        Kind::TooManySessions => codes::SESSION_LIMIT,
        Kind::MethodNotFound => codes::METHOD_NOT_FOUND,
        Kind::InvalidParams => codes::INVALID_PARAMS,
        Kind::Server(code) => code,
        Kind::SignInRequired => codes::URL_ELICITATION_REQUIRED,
        Kind::Internal | Kind::Unanswered | Kind::AuthUnavailable => codes::INTERNAL_ERROR,
    }
}

/// What the wire says of `err`: internal failures are logged here, and only named.
fn message_of(err: &Error) -> &str {
    if err.kind == Kind::Internal {
        tracing::error!("internal error: {}", err.message);
        return "internal error";
    }
    err.message.as_str()
}

/// The error member of an answer, `{"error": {code, message, data?}}`: an upstream's refusal
/// travels in `data` (its status and challenge), for the front to answer with.
pub fn answer(err: &Error) -> Value {
    let mut e = json!({"code": code(err.kind), "message": message_of(err)});
    if let Some(r) = &err.refusal {
        e["data"] = json!({"status": r.status, "wwwAuthenticate": r.www_authenticate});
    }
    if let Some(sign_ins) = err.sign_in.as_ref().filter(|_| err.kind == Kind::SignInRequired) {
        // URL-mode elicitations (2025-11-25), one per server to sign in to.
        let each = |s: &crate::error::SignIn| {
            let message = format!("Sign in to {} to use it", s.server);
            json!({"mode": "url", "elicitationId": s.elicitation_id, "url": s.url, "message": message})
        };
        e["data"] = json!({"elicitations": sign_ins.iter().map(each).collect::<Vec<_>>()});
    }
    if let Some(data) = &err.data {
        e["data"] = (**data).clone();
    }
    json!({"error": e})
}

/// The HTTP status of an answer to a 2026-07-28 request, from its error's code, as that
/// revision's servers answer: a method there is not is 404; a request that cannot be carried
/// out as sent (its revision, its headers, a capability it did not declare, not JSON-RPC) is
/// 400. Any other error is the answer's own business, on 200.
pub fn modern_status(answer: &Value) -> StatusCode {
    match answer.pointer("/error/code").and_then(Value::as_i64) {
        Some(codes::METHOD_NOT_FOUND) => StatusCode::NOT_FOUND,
        Some(
            codes::PARSE_ERROR
            | codes::INVALID_REQUEST
            | codes::HEADER_MISMATCH
            | codes::UNSUPPORTED_VERSION
            | codes::MISSING_CAPABILITY,
        ) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// A whole JSON-RPC error message answering `id` (null when unknown), as bytes on one line:
/// the id as the request wrote it.
pub fn message(err: &Error, id: Option<&RawValue>) -> Bytes {
    let id = id.map_or("null", RawValue::get);
    if err.data.is_some() {
        let mut m = answer(err);
        m["jsonrpc"] = json!("2.0");
        m["id"] = serde_json::from_str(id).unwrap_or(Value::Null);
        return Bytes::from(m.to_string());
    }
    let message = serde_json::to_string(message_of(err)).unwrap_or_else(|_| "\"error\"".into());
    let code = code(err.kind);
    Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#))
}

/// The response for `err`, answering the request `id` (null when unknown or not a request).
pub fn error(err: &Error, id: Option<&RawValue>) -> Response<Body> {
    let mut resp = Response::new(body::full(message(err, id)));
    *resp.status_mut() = status(err.kind);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if err.kind == Kind::MethodNotAllowed {
        resp.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("GET, POST, DELETE, OPTIONS"));
    }
    // The gateway's own challenge (an upstream's travels in the JSON-RPC error's data instead).
    if matches!(err.kind, Kind::Unauthenticated | Kind::InsufficientScope)
        && let Some(challenge) = err.refusal.as_ref().and_then(|r| r.www_authenticate.as_deref())
        && let Ok(v) = HeaderValue::from_str(challenge)
    {
        resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_is_a_url_elicitation_only_for_a_client_that_takes_one() {
        let sign_ins = |n: usize| {
            (0..n)
                .map(|i| crate::error::SignIn {
                    server: format!("s{i}"),
                    url: format!("https://gw/upstream/s{i}/sign-in?ticket=t{i}"),
                    elicitation_id: format!("e{i}"),
                    again: false,
                })
                .collect::<Vec<_>>()
        };
        let a = answer(&Error::sign_in(sign_ins(2), true));
        assert_eq!(a["error"]["code"], json!(-32042));
        assert_eq!(a["error"]["message"], json!("sign in to s0, s1 to use them"));
        let each = &a["error"]["data"]["elicitations"];
        assert_eq!(
            each[1],
            json!({"mode": "url", "elicitationId": "e1", "url": "https://gw/upstream/s1/sign-in?ticket=t1", "message": "Sign in to s1 to use it"})
        );
        let plain = answer(&Error::sign_in(sign_ins(1), false));
        assert_eq!(plain["error"]["code"], json!(codes::CREDENTIAL_UNAVAILABLE));
        assert!(plain["error"].get("data").is_none(), "{plain}");
        let text = plain["error"]["message"].as_str().unwrap();
        assert!(text.contains("open https://gw/upstream/s0/sign-in?ticket=t0 for s0 in your browser"), "{text}");
    }

    #[test]
    fn an_error_message_keeps_the_raw_id_and_says_only_what_is_not_internal() {
        let p = crate::jsonrpc::Payload::parse(br#"{"jsonrpc":"2.0","id":"x\"1","method":"ping"}"#).unwrap();
        let body = message(&Error::new(Kind::Server(-32000), "boom \"quoted\""), p.error_id());
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((v["id"].clone(), v["error"]["code"].clone()), (json!("x\"1"), json!(-32000)));
        assert_eq!(v["error"]["message"], "boom \"quoted\"");
        let v: Value = serde_json::from_slice(&message(&Error::new(Kind::Internal, "a secret path"), None)).unwrap();
        assert_eq!(v["error"]["message"], "internal error");
        let refused =
            Error::refused("s", crate::error::Refusal { status: 401, www_authenticate: Some("Bearer".into()) });
        assert_eq!(answer(&refused)["error"]["data"], json!({"status": 401, "wwwAuthenticate": "Bearer"}));
    }
}
