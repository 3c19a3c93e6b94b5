//! The one error type of the request path. Each error knows where it came from (the client,
//! the upstream, or mcpgate itself) and whether trying again may help; `http::wire` maps it to
//! a status and a JSON-RPC error body, in one place.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Client,
    Upstream,
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The body is not JSON.
    Parse,
    /// The body is not JSON-RPC, a required header is missing, or the version is unknown.
    BadRequest,
    /// 2026-07-28 standard headers disagree with the body.
    HeaderMismatch,
    /// Host or Origin not allowed (DNS rebinding, cross-site browsers).
    Forbidden,
    /// The client's session id is unknown (expired, deleted, or never issued).
    SessionNotFound,
    PayloadTooLarge,
    MethodNotAllowed,
    /// A POST whose body is not declared JSON.
    UnsupportedMediaType,
    /// A POST whose `Accept` admits no answer the endpoint gives.
    NotAcceptable,
    /// The session limits are reached and no session is idle to make room.
    TooManySessions,
    /// The session's own event stream is open already (one at a time, as the SDKs have it).
    Conflict,
    /// Could not connect, or the connection broke.
    UpstreamUnreachable,
    /// No answer within the configured time.
    UpstreamTimeout,
    /// The upstream answered something that is not MCP.
    UpstreamProtocol,
    /// No usable upstream credential: none could be had, or the server refused the one sent
    /// (the refusal, with its challenge, travels with the error).
    Credential,
    /// The gateway routes no such method (a listing it does not know, a method no one server
    /// takes).
    MethodNotFound,
    /// The request names what nobody offers (a tool, prompt or resource), or lacks what it
    /// needs (a retry without its answer).
    InvalidParams,
    /// A server's own error, relayed with its code.
    Server(i64),
    /// The caller presented no valid token (401); the gateway's challenge travels with the error.
    Unauthenticated,
    /// The caller's token lacks a scope the gateway requires (403, `insufficient_scope`).
    InsufficientScope,
    /// The caller's token cannot be checked now: the issuer's keys could not be had (503).
    AuthUnavailable,
    /// A server's request to the client got no answer: the client went away, never answered,
    /// or is not there to ask.
    Unanswered,
    /// The user must sign in to a server first, at the URL the error carries (`sign_in`): a
    /// client that declared URL-mode elicitation is sent there (-32042).
    SignInRequired,
    /// The request names a protocol revision the gateway does not speak (-32022; `data` lists
    /// the ones it does, and echoes the one asked).
    UnsupportedVersion,
    /// Carrying out the request needs a capability the 2026-07-28 client did not declare
    /// (-32021; `data.requiredCapabilities` names it).
    MissingCapability,
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    /// An upstream's 401 or 403 that nothing here could cure, kept for the client.
    pub refusal: Option<Box<Refusal>>,
    /// Where the user signs in, to each server that waits for it (`SignInRequired`, or a
    /// `Credential` error that tells a client unable to open URLs where to go).
    pub sign_in: Option<Box<[SignIn]>>,
    /// What the JSON-RPC error's `data` says (the revisions spoken, the capability missing).
    pub data: Option<Box<serde_json::Value>>,
}

/// A sign-in to a server a user must complete in their browser: the elicitation a client is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub server: String,
    pub url: String,
    pub elicitation_id: String,
    /// The client session was sent there before, and the sign-in is still pending.
    pub again: bool,
}

/// An upstream's 401 or 403, as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub www_authenticate: Option<String>,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), refusal: None, sign_in: None, data: None }
    }

    /// The same error, its JSON-RPC `data` said.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(Box::new(data));
        self
    }

    /// A server of `serve` that cannot be reached, or does not run.
    pub fn unavailable(server: &str, why: impl std::fmt::Display) -> Self {
        Error::new(Kind::UpstreamUnreachable, format!("server {server} is unavailable: {why}"))
    }

    /// A server of `serve` ended a call without an answer (it died, or dropped it).
    pub fn dropped(server: &str) -> Self {
        Error::new(Kind::UpstreamUnreachable, format!("server {server} dropped the call"))
    }

    /// A server of `serve` did not answer a call within its `timeout`.
    pub fn late(server: &str, timeout: Duration) -> Self {
        Error::new(Kind::UpstreamTimeout, format!("server {server} did not answer within {timeout:?}"))
    }

    /// The gateway's own refusal of a caller (401/403), with the challenge that says how to get
    /// a token it takes.
    pub fn challenge(kind: Kind, message: impl Into<String>, www_authenticate: String) -> Self {
        let status = if kind == Kind::InsufficientScope { 403 } else { 401 };
        let refusal = Refusal { status, www_authenticate: Some(www_authenticate) };
        Error { kind, message: message.into(), refusal: Some(Box::new(refusal)), sign_in: None, data: None }
    }

    /// A server of `serve` refused the credential (401/403); the challenge goes to the client.
    pub fn refused(server: &str, refusal: Refusal) -> Self {
        let message = format!(
            "server {server} refused the request (HTTP {}): it needs a credential mcpgate does not have",
            refusal.status
        );
        Error { kind: Kind::Credential, message, refusal: Some(Box::new(refusal)), sign_in: None, data: None }
    }

    /// The user must sign in first, to each server of `sign_ins`. A client that can open URLs
    /// for the user (URL-mode elicitation) is sent there; any other is told where to go.
    pub fn sign_in(sign_ins: Vec<SignIn>, url_capable: bool) -> Self {
        let servers: Vec<&str> = sign_ins.iter().map(|s| s.server.as_str()).collect();
        if url_capable {
            let message =
                format!("sign in to {} to use {}", servers.join(", "), if servers.len() == 1 { "it" } else { "them" });
            return Error {
                kind: Kind::SignInRequired,
                message,
                refusal: None,
                sign_in: Some(sign_ins.into()),
                data: None,
            };
        }
        let urls: Vec<String> = sign_ins.iter().map(|s| format!("{} for {}", s.url, s.server)).collect();
        let message = format!("you must sign in first: open {} in your browser, then try again", urls.join(" and "));
        Error { kind: Kind::Credential, message, refusal: None, sign_in: Some(sign_ins.into()), data: None }
    }

    pub fn origin(&self) -> Origin {
        match self.kind {
            Kind::Parse
            | Kind::BadRequest
            | Kind::HeaderMismatch
            | Kind::Forbidden
            | Kind::SessionNotFound
            | Kind::PayloadTooLarge
            | Kind::MethodNotAllowed
            | Kind::UnsupportedMediaType
            | Kind::NotAcceptable
            | Kind::TooManySessions
            | Kind::Conflict
            | Kind::MethodNotFound
            | Kind::InvalidParams
            | Kind::Unanswered
            | Kind::Unauthenticated
            | Kind::InsufficientScope
            | Kind::SignInRequired
            | Kind::UnsupportedVersion
            | Kind::MissingCapability => Origin::Client,
            Kind::UpstreamUnreachable | Kind::UpstreamTimeout | Kind::UpstreamProtocol | Kind::Server(_) => {
                Origin::Upstream
            }
            Kind::Credential | Kind::Internal | Kind::AuthUnavailable => Origin::Internal,
        }
    }

    /// Whether the same request may succeed if sent again later.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            Kind::UpstreamUnreachable | Kind::UpstreamTimeout | Kind::TooManySessions | Kind::AuthUnavailable
        )
    }

    pub fn unreachable(upstream: &str, cause: impl std::fmt::Display) -> Self {
        Error::new(Kind::UpstreamUnreachable, format!("upstream {upstream} is unreachable: {cause}"))
    }

    pub fn timeout(upstream: &str, after: Duration) -> Self {
        Error::new(Kind::UpstreamTimeout, format!("upstream {upstream} did not answer within {after:?}"))
    }

    pub fn protocol(upstream: &str, cause: impl std::fmt::Display) -> Self {
        Error::new(Kind::UpstreamProtocol, format!("upstream {upstream} broke the protocol: {cause}"))
    }
}

/// A session that could not be made: the limits (503, the client may retry), or the system's
/// random number generator (internal).
impl From<crate::mcp::session::CreateError> for Error {
    fn from(e: crate::mcp::session::CreateError) -> Self {
        use crate::mcp::session::CreateError;
        match e {
            CreateError::Full { .. } => Error::new(Kind::TooManySessions, e.to_string()),
            CreateError::Random(_) => Error::new(Kind::Internal, e.to_string()),
        }
    }
}

/// An error and the chain of its sources, on one line (hyper's top-level messages alone say
/// little: "client error (Connect)").
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_knows_its_origin_and_whether_a_retry_may_help() {
        let table = [
            (Kind::Parse, Origin::Client, false),
            (Kind::Forbidden, Origin::Client, false),
            (Kind::TooManySessions, Origin::Client, true),
            (Kind::SessionNotFound, Origin::Client, false),
            (Kind::UpstreamUnreachable, Origin::Upstream, true),
            (Kind::UpstreamTimeout, Origin::Upstream, true),
            (Kind::UpstreamProtocol, Origin::Upstream, false),
            (Kind::Credential, Origin::Internal, false),
            (Kind::SignInRequired, Origin::Client, false),
            (Kind::Internal, Origin::Internal, false),
        ];
        for (kind, origin, retry) in table {
            let e = Error::new(kind, "x");
            assert_eq!((e.origin(), e.retryable()), (origin, retry), "{kind:?}");
        }
    }
}
