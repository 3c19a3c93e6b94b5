//! The one dispatch decision of `serve`: for a message, parsed once, who answers it — the
//! gateway itself, a server the client sees alone, one of several servers by its prefixed name,
//! or the router when the call is made — and whether policy lets it through. Every message of
//! every era and endpoint is decided here (`Gateway::post` for legacy clients, the same call
//! for 2026-07-28 ones), so a rule written here holds on every path: the hidden-tool rule and the
//! caller's rights (`Router::permitted`).

use std::sync::Arc;

use serde_json::Value;

use super::router::{Backend, LISTINGS, Router};
use super::session::View;
use crate::error::{Error, Kind};
use crate::jsonrpc::Envelope;
use crate::policy::{Access, What};

/// The methods the gateway answers itself, whatever server the client sees: the handshake, the
/// merged listings (from the cache), liveness, the log level it passes to every server, and
/// the 2026-07-28 discovery (every `server/` method).
fn answered_here(method: &str) -> bool {
    matches!(method, "initialize" | "notifications/initialized" | "ping" | "logging/setLevel")
        || LISTINGS.iter().any(|(l, _)| *l == method)
        || method.starts_with("server/")
}

/// Who answers a message.
pub enum Target {
    /// The gateway (`answered_here`: the handshake, `ping`, the listings; answers to its own questions, and on the
    /// merged endpoint every notification and answer: it knows where each goes).
    Gateway,
    /// The one server the client sees, unprefixed: what the gateway need not rewrite goes to it
    /// as it came.
    Lone(Arc<Backend>),
    /// One of several servers, named with its prefix (`tools/call`, `prompts/get`); `inner` is
    /// the name the server knows.
    Named { backend: Arc<Backend>, inner: String },
    /// The router finds the server when the call is made: a resource by its URI, a completion
    /// by its ref, a subscription (counted per server), anything else by being the only one.
    Router,
    /// Refused by policy, with the answer to give.
    Refused(Error),
}

impl Router {
    /// Decides who answers `msg`, for a client that sees `view` and may use what `access`
    /// grants.
    pub fn target(&self, view: &View, access: &Access, msg: &Envelope<'_>) -> Target {
        let method = msg.method();
        let here = method.is_some_and(answered_here);
        // An answer to a question of the gateway's own (a server's request it relayed, under an
        // id of its own) is the gateway's to route back.
        let ours = method.is_none() && msg.id.is_some_and(|id| crate::jsonrpc::ids::is_ours(id.get()));
        if here || ours {
            return Target::Gateway;
        }
        // A resource (or a prompt to complete) the caller may not use is as unknown as one
        // nobody offers.
        if !access.is_everything()
            && let Some(refused) = self.refused_reference(view, access, method, msg)
        {
            return Target::Refused(refused);
        }
        if matches!(method, Some("resources/subscribe" | "resources/unsubscribe")) {
            return Target::Router;
        }
        // A tool or prompt the configuration hides, or the caller may not use, is as unknown as
        // in the listing.
        let what = match method {
            Some("tools/call") => Some(What::Tool),
            Some("prompts/get") => Some(What::Prompt),
            _ => None,
        };
        if let Some(b) = self.alone(view) {
            let open = b.cfg.tools.is_open() && access.is_everything();
            if let Some(what) = what.filter(|_| !open)
                && !msg.target_name().is_some_and(|t| self.permitted(access, &b, what, &t))
            {
                return Target::Refused(unknown(what, msg));
            }
            return Target::Lone(b);
        }
        match (method, what) {
            (_, Some(what)) => {
                let name = msg.target_name().unwrap_or_default();
                match self.by_name(view, &name) {
                    Some((backend, inner)) if self.permitted(access, &backend, what, &inner) => {
                        Target::Named { backend, inner }
                    }
                    _ => Target::Refused(unknown(what, msg)),
                }
            }
            (Some(_), None) if msg.id.is_some() => Target::Router,
            _ => Target::Gateway,
        }
    }
}

impl Router {
    /// For a caller with limited rights, the refusal of a request naming a resource (read,
    /// subscribe) or a prompt or resource to complete that they may not use — as unknown as one
    /// nobody offers. A resource's server is named by its URI, or is the only one; an
    /// unprefixed URI among several servers cannot be placed without asking them, so it is
    /// refused.
    fn refused_reference(
        &self,
        view: &View,
        access: &Access,
        method: Option<&str>,
        msg: &Envelope<'_>,
    ) -> Option<Error> {
        let params = match method {
            Some("resources/read" | "resources/subscribe" | "resources/unsubscribe" | "completion/complete") => {
                msg.params_value()
            }
            _ => return None,
        };
        let (what, named) = match (method, params.get("ref")) {
            (Some("completion/complete"), Some(r)) if r.get("type").and_then(Value::as_str) == Some("ref/prompt") => {
                (What::Prompt, r.get("name"))
            }
            (Some("completion/complete"), Some(r)) => (What::Resource, r.get("uri")),
            _ => (What::Resource, params.get("uri")),
        };
        let named = named.and_then(Value::as_str).unwrap_or_default();
        let allowed = match what {
            What::Resource => self.may_use_resource(view, access, named),
            _ => {
                let found = match self.alone(view) {
                    Some(b) => Some((b, named.to_owned())),
                    None => self.by_name(view, named),
                };
                found.is_some_and(|(b, own)| self.permitted(access, &b, what, &own))
            }
        };
        (!allowed).then(|| match what {
            What::Resource => Error::new(Kind::InvalidParams, format!("no server offers the resource {named}")),
            _ => Error::new(Kind::InvalidParams, format!("unknown prompt: {named}")),
        })
    }
}

impl Router {
    /// Whether a caller with `access` may use the resource `uri` (read it, follow its updates):
    /// its server is known by the URI, and the caller's rights cover it there.
    pub fn may_use_resource(&self, view: &View, access: &Access, uri: &str) -> bool {
        access.is_everything()
            || self.resource_server(view, uri).is_some_and(|(b, own)| self.permitted(access, &b, What::Resource, &own))
    }
}

impl Target {
    /// The server decided here, with the name it knows a prefixed tool or prompt by: what the
    /// router sends to without looking further (`None`: the router finds it).
    pub fn server(&self) -> Option<(&Arc<Backend>, Option<&str>)> {
        match self {
            Target::Lone(b) => Some((b, None)),
            Target::Named { backend, inner } => Some((backend, Some(inner))),
            Target::Gateway | Target::Router | Target::Refused(_) => None,
        }
    }

    /// The answer for a target that is no server's (refused, or the gateway's own method, which
    /// its caller answers before it could get here).
    pub fn not_routed(&self, method: &str) -> Option<Error> {
        match self {
            Target::Refused(e) => Some(e.clone()),
            Target::Gateway => Some(Error::new(Kind::MethodNotFound, format!("{method} is not routed to a server"))),
            Target::Lone(_) | Target::Named { .. } | Target::Router => None,
        }
    }
}

fn unknown(what: What, msg: &Envelope<'_>) -> Error {
    let what = match what {
        What::Tool => "tool",
        What::Prompt => "prompt",
        What::Resource => "resource",
    };
    Error::new(Kind::InvalidParams, format!("unknown {what}: {}", msg.target_name().unwrap_or_default()))
}
