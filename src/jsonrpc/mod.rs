//! JSON-RPC 2.0 envelopes: just enough of a message to route it. Payloads stay raw
//! (`RawValue`), so what the gateway only forwards is never re-serialized.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

pub mod codes;
pub mod ids;

/// One JSON-RPC message, borrowed from the bytes it was parsed from.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// Must be `"2.0"` in what a client sends (`Payload::check_version`).
    #[serde(borrow, default)]
    pub jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    // Through `Text`: serde borrows a bare `Cow<str>` field, but fills an `Option` of one with
    // an owned copy, an allocation for every message.
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

/// A string, borrowed from the body unless it holds escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

fn borrowed<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<Text<'a>>::deserialize(d)?.map(|t| t.0))
}

/// What a message is, by the fields it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
    Invalid,
}

impl Envelope<'_> {
    pub fn kind(&self) -> Kind {
        match (&self.method, self.id) {
            (Some(_), Some(_)) => Kind::Request,
            (Some(_), None) => Kind::Notification,
            (None, Some(_)) if self.result.is_some() || self.error.is_some() => Kind::Response,
            _ => Kind::Invalid,
        }
    }

    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The params as a value (`{}` when there are none or they do not parse).
    pub fn params_value(&self) -> serde_json::Value {
        self.params
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()))
    }

    /// The progress token, as raw JSON text: a request's `params._meta.progressToken`, or the
    /// `params.progressToken` of a `notifications/progress`.
    pub fn progress_token(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Meta<'a> {
            #[serde(borrow, rename = "progressToken")]
            token: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(borrow, rename = "_meta")]
            meta: Option<Meta<'a>>,
            #[serde(borrow, rename = "progressToken")]
            token: Option<&'a RawValue>,
        }
        let params: Params = serde_json::from_str(self.params?.get()).ok()?;
        let raw = if self.method() == Some("notifications/progress") { params.token } else { params.meta?.token };
        raw.map(|r| r.get().to_owned())
    }

    /// The `params.name` (tools, prompts) or `params.uri` (resources) a request addresses.
    pub fn target_name(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Target<'a> {
            #[serde(borrow, default)]
            name: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            uri: Option<Cow<'a, str>>,
            #[serde(borrow, default, rename = "taskId")]
            task_id: Option<Cow<'a, str>>,
        }
        let params = self.params?;
        let target: Target = serde_json::from_str(params.get()).ok()?;
        match self.method() {
            Some("resources/read" | "resources/subscribe" | "resources/unsubscribe") => target.uri,
            // The tasks extension (SEP-2663): a task is named by its id.
            Some("tasks/get" | "tasks/update" | "tasks/cancel") => target.task_id,
            _ => target.name,
        }
        .map(Cow::into_owned)
    }
}

/// A POST body: one message or (2025-03-26 only) a batch.
#[derive(Debug)]
pub enum Payload<'a> {
    Single(Envelope<'a>),
    Batch(Vec<Envelope<'a>>),
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not JSON-RPC: {0}")]
    NotJsonRpc(String),
    #[error("the batch is empty")]
    EmptyBatch,
    #[error("a message lacks \"jsonrpc\": \"2.0\"")]
    NotVersion2,
}

impl<'a> Payload<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            let batch: Vec<Envelope<'a>> =
                serde_json::from_slice(body).map_err(|e| ParseError::NotJsonRpc(e.to_string()))?;
            if batch.is_empty() {
                return Err(ParseError::EmptyBatch);
            }
            Ok(Payload::Batch(batch))
        } else {
            serde_json::from_slice(body).map(Payload::Single).map_err(|e| ParseError::NotJsonRpc(e.to_string()))
        }
    }

    pub fn messages(&self) -> &[Envelope<'a>] {
        match self {
            Payload::Single(m) => std::slice::from_ref(m),
            Payload::Batch(v) => v,
        }
    }

    /// The single message, when the body is not a batch.
    pub fn single(&self) -> Option<&Envelope<'a>> {
        match self {
            Payload::Single(m) => Some(m),
            Payload::Batch(_) => None,
        }
    }

    pub fn is_initialize(&self) -> bool {
        self.single().and_then(Envelope::method) == Some("initialize")
    }

    /// Whether any message expects an answer.
    pub fn has_requests(&self) -> bool {
        self.messages().iter().any(|m| m.kind() == Kind::Request)
    }

    /// The ids of the requests in the body, as raw JSON text, to tell when each is answered.
    pub fn request_ids(&self) -> Vec<String> {
        self.messages()
            .iter()
            .filter(|m| m.kind() == Kind::Request)
            .filter_map(|m| m.id.map(|i| i.get().to_owned()))
            .collect()
    }

    /// Every message says `"jsonrpc": "2.0"`: anything else is refused (-32600) before it goes
    /// anywhere (a server would drop it, and its client would wait for nothing).
    pub fn check_version(&self) -> Result<(), ParseError> {
        match self.messages().iter().all(|m| m.jsonrpc.is_some_and(|v| v.get() == "\"2.0\"")) {
            true => Ok(()),
            false => Err(ParseError::NotVersion2),
        }
    }

    /// Whether a response is among its messages.
    pub fn has_response(&self) -> bool {
        self.messages().iter().any(|m| m.kind() == Kind::Response)
    }

    /// The id to answer an error with: the single request's id, else null.
    pub fn error_id(&self) -> Option<&'a RawValue> {
        self.single().and_then(|m| m.id)
    }
}

/// Where `part` (borrowed from `whole`, e.g. a `RawValue` of a message parsed from it) lies in it.
pub fn span_of(whole: &[u8], part: &str) -> Option<std::ops::Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len() && &whole[start..end] == part.as_bytes()).then_some(start..end)
}

/// `msg` with `span` replaced by `with`, on one line: the CR and LF a pretty-printer puts between
/// tokens become spaces (inside JSON strings they are always escaped), so the result can be a
/// line of a stdio stream or an SSE `data:` line.
pub fn splice_line(msg: &[u8], span: std::ops::Range<usize>, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + with.len());
    out.extend_from_slice(&msg[..span.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&msg[span.end..]);
    for b in &mut out {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    out
}

/// A notification with no params, e.g. `notifications/initialized`.
pub fn notification(method: &str) -> Bytes {
    let method = serde_json::to_string(method).unwrap_or_default();
    Bytes::from(format!(r#"{{"jsonrpc":"2.0","method":{method}}}"#))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_is_borrowed_from_the_body_unless_escaped() {
        let p = Payload::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#).unwrap();
        assert!(matches!(p.single().unwrap().method, Some(Cow::Borrowed("tools/call"))));
        let p = Payload::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call"}"#).unwrap();
        assert!(matches!(&p.single().unwrap().method, Some(Cow::Owned(m)) if m == "tools/call"));
        let p = Payload::parse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap();
        assert!(p.single().unwrap().method.is_none());
        assert!(Payload::parse(br#"{"jsonrpc":"2.0","id":1,"method":7}"#).is_err());
    }

    #[test]
    fn kinds() {
        let p = Payload::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#).unwrap();
        let m = p.single().unwrap();
        assert_eq!(m.kind(), Kind::Request);
        assert_eq!(m.target_name().as_deref(), Some("echo"));
        let p = Payload::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(p.single().unwrap().kind(), Kind::Notification);
        let p = Payload::parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert_eq!(p.single().unwrap().kind(), Kind::Response);
        let p =
            Payload::parse(br#" [{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"x"}]"#).unwrap();
        assert_eq!(p.request_ids().len(), 1);
        assert!(Payload::parse(b"[]").is_err());
        assert!(Payload::parse(b"{").is_err());
    }

    #[test]
    fn progress_tokens() {
        let p = Payload::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":"t1"}}}"#,
        )
        .unwrap();
        assert_eq!(p.single().unwrap().progress_token().as_deref(), Some("\"t1\""));
        let p = Payload::parse(
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":1}}"#,
        )
        .unwrap();
        assert_eq!(p.single().unwrap().progress_token().as_deref(), Some("7"));
        let p = Payload::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        assert_eq!(p.single().unwrap().progress_token(), None);
    }

    #[test]
    fn escaped_method_and_uri_target() {
        let p = Payload::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"resources\/read","params":{"uri":"file:///a","name":"x"}}"#,
        )
        .unwrap();
        let m = p.single().unwrap();
        assert_eq!(m.method(), Some("resources/read"));
        assert_eq!(m.target_name().as_deref(), Some("file:///a"));
    }
}
