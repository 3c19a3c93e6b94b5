//! Protocol revisions and the two eras they fall into.
//!
//! Legacy (2024-11-05 … 2025-11-25): `initialize`, sessions, a GET stream, server→client requests.
//! Modern (2026-07-28 onward): stateless, per-request `_meta`, `Mcp-Method`/`Mcp-Name` headers.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Legacy,
    Modern,
}

/// Every revision this gateway knows, oldest first.
pub const KNOWN_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

/// The first modern revision.
pub const FIRST_MODERN: &str = "2026-07-28";

/// What a client that sends no `MCP-Protocol-Version` header is assumed to speak (spec: 2025-03-26).
pub const DEFAULT_VERSION: &str = "2025-03-26";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unsupported MCP-Protocol-Version {0:?}: expected one of {list}", list = KNOWN_VERSIONS.join(", "))]
pub struct UnsupportedVersion(pub String);

/// On the wire: -32022 (HTTP 400), naming every revision spoken here and echoing the one asked.
impl From<UnsupportedVersion> for crate::error::Error {
    fn from(e: UnsupportedVersion) -> Self {
        let message = e.to_string();
        let supported: Vec<&str> = KNOWN_VERSIONS.iter().rev().copied().collect();
        crate::error::Error::new(crate::error::Kind::UnsupportedVersion, message)
            .with_data(serde_json::json!({"supported": supported, "requested": e.0}))
    }
}

/// The era of a request, from its `MCP-Protocol-Version` header (absent: legacy).
///
/// A well-formed revision newer than every one we know is treated as modern, so a client ahead
/// of this build still reaches a modern upstream; anything else unknown is refused (400).
pub fn era_of(header: Option<&str>) -> Result<Era, UnsupportedVersion> {
    let Some(v) = header else {
        return Ok(Era::Legacy);
    };
    if KNOWN_VERSIONS.contains(&v) {
        return Ok(if v >= FIRST_MODERN { Era::Modern } else { Era::Legacy });
    }
    if is_date(v) && v > FIRST_MODERN {
        return Ok(Era::Modern);
    }
    Err(UnsupportedVersion(v.chars().take(40).collect()))
}

/// What an upstream's answer to a legacy `initialize` says about the era it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// Use the answer as it is: a legacy server's result (or an error of its own), or a failure
    /// that says nothing about the era (401/403 are the credential's business, 5xx the server's).
    AsIs,
    /// A server that speaks only the modern era, and the modern revision to speak to it.
    Modern(&'static str),
    /// 400, 404 or 405 without a modern error: no Streamable HTTP endpoint here, which is the
    /// spec's sign to try HTTP+SSE (what `connect` does with `--transport auto`).
    HttpSse,
}

/// The era of an upstream, from its answer to a legacy `initialize`: the HTTP status, and the
/// JSON-RPC message that answered (a JSON body, or the data of the event that answered; empty
/// when there was none). No I/O.
///
/// A server is taken for modern only on evidence no legacy server gives, since every legacy
/// server implements `initialize` and knows no modern revision:
/// - an error whose `data.supported` lists a modern revision this gateway speaks (`-32022`,
///   `UnsupportedProtocolVersion`, is the spec's; any code counts);
/// - `-32020` (`HeaderMismatch`, a 2026-07-28 code) with 400, as the spec answers it;
/// - `-32601` (method not found): `initialize` is unknown only to a modern-only server;
/// - a result that is a modern one: `protocolVersion` a modern revision, or no
///   `protocolVersion` and `supportedVersions` (the shape of `server/discover`'s result).
///
/// Errors count with 2xx and with 4xx other than 401/403; the status alone decides the rest.
pub fn detect(status: u16, answer: &[u8]) -> Detected {
    let msg = answering_message(answer);
    let result = msg.as_ref().and_then(|m| m.get("result"));
    let error = msg.as_ref().and_then(|m| m.get("error")).and_then(|e| modern_error(status, e));
    match (status, result, error) {
        (200..=299, Some(r), _) => modern_result(r).map_or(Detected::AsIs, Detected::Modern),
        (401 | 403, _, _) => Detected::AsIs,
        (200..=299 | 400..=499, _, Some(said)) => said,
        (400 | 404 | 405, _, None) => Detected::HttpSse,
        _ => Detected::AsIs,
    }
}

/// Whether an answer to `initialize` is a legacy server's result (its `protocolVersion` a revision
/// of the 2025 era): evidence that the server speaks that era.
pub fn legacy_result(answer: &[u8]) -> bool {
    let msg = answering_message(answer);
    let version = msg.as_ref().and_then(|m| m.pointer("/result/protocolVersion")).and_then(|v| v.as_str());
    version.is_some_and(|v| era_of(Some(v)) == Ok(Era::Legacy))
}

/// The response message in a body: the object itself, or the first response of a batch.
fn answering_message(answer: &[u8]) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let is_response = |m: &serde_json::Value| m.get("result").is_some() || m.get("error").is_some();
    match v {
        serde_json::Value::Array(items) => items.into_iter().find(is_response),
        v if is_response(&v) => Some(v),
        _ => None,
    }
}

/// What an error says if it is a modern server's: `Modern` with the revision to speak, or
/// `AsIs` when it names none this gateway speaks (the refusal is then the client's best answer).
fn modern_error(status: u16, error: &serde_json::Value) -> Option<Detected> {
    const METHOD_NOT_FOUND: i64 = -32601;
    let supported = error.get("data").and_then(|d| d.get("supported")).and_then(serde_json::Value::as_array);
    if let Some(v) = supported.and_then(|s| shared_modern(s)) {
        return Some(Detected::Modern(v));
    }
    match error.get("code").and_then(serde_json::Value::as_i64)? {
        crate::jsonrpc::codes::UNSUPPORTED_VERSION => Some(Detected::AsIs),
        crate::jsonrpc::codes::HEADER_MISMATCH if status == 400 => Some(Detected::Modern(newest_modern())),
        METHOD_NOT_FOUND => Some(Detected::Modern(newest_modern())),
        _ => None,
    }
}

/// The modern revision to speak to a server whose `initialize` result is a modern one.
fn modern_result(result: &serde_json::Value) -> Option<&'static str> {
    match result.get("protocolVersion") {
        Some(v) => {
            let v = v.as_str()?;
            KNOWN_VERSIONS.iter().copied().find(|k| *k == v && era_of(Some(k)) == Ok(Era::Modern))
        }
        None => shared_modern(result.get("supportedVersions")?.as_array()?),
    }
}

/// The newest modern revision both this gateway and `list` name.
fn shared_modern(list: &[serde_json::Value]) -> Option<&'static str> {
    modern_known().find(|k| list.iter().any(|v| v.as_str() == Some(k)))
}

/// The newest modern revision this gateway speaks.
fn newest_modern() -> &'static str {
    modern_known().next().unwrap_or(FIRST_MODERN)
}

/// The modern revisions this gateway speaks, newest first.
fn modern_known() -> impl Iterator<Item = &'static str> {
    KNOWN_VERSIONS.iter().rev().copied().filter(|k| era_of(Some(k)) == Ok(Era::Modern))
}

fn is_date(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_legacy_result_says_the_legacy_era() {
        let legacy = br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{}}}"#;
        assert!(legacy_result(legacy));
        for nothing in [
            &br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2026-07-28"}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x","data":{"supported":["1999-01-01"]}}}"#,
            b"<html>maintenance</html>",
            b"",
        ] {
            assert!(!legacy_result(nothing), "{}", String::from_utf8_lossy(nothing));
        }
    }

    use super::*;

    /// Each answer a legacy `initialize` may get, and what it says.
    #[test]
    fn detection() {
        use Detected::*;
        let m = Modern("2026-07-28");
        #[rustfmt::skip]
        let cases: &[(&str, u16, &str, Detected)] = &[
            // Legacy servers answer it.
            ("legacy result", 200, r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"s","version":"1"}}}"#, AsIs),
            ("legacy result in a batch", 200, r#"[{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-03-26"}}]"#, AsIs),
            ("dual-era result", 200, r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","supportedVersions":["2026-07-28"]}}"#, AsIs),
            ("legacy error of its own", 200, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad params"}}"#, AsIs),
            ("empty 200", 200, "", AsIs),
            ("not JSON", 200, "<html>hi</html>", AsIs),
            ("legacy custom error with 400", 400, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"Bad Request: Unsupported protocol version: 2025-11-25"}}"#, HttpSse),
            // The spec's sign to try HTTP+SSE.
            ("bare 400", 400, "", HttpSse),
            ("404 page", 404, "Not Found", HttpSse),
            ("405", 405, "", HttpSse),
            // Auth and server failures say nothing of the era, whatever the body.
            ("401", 401, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}"#, AsIs),
            ("403", 403, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"data":{"supported":["2026-07-28"]}}}"#, AsIs),
            ("500", 500, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}"#, AsIs),
            ("other 4xx", 415, "", AsIs),
            // -32022 and its list.
            ("-32022", 400, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x","data":{"supported":["2026-07-28"],"requested":"2025-11-25"}}}"#, m),
            ("-32022 with 200", 200, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x","data":{"supported":["2026-07-28"]}}}"#, m),
            ("-32022 naming only revisions we do not speak", 400, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"data":{"supported":["2027-01-01"]}}}"#, AsIs),
            ("-32022 naming only legacy revisions", 400, r#"{"error":{"code":-32022,"data":{"supported":["2025-06-18"]}}}"#, AsIs),
            ("another code listing a modern revision", 400, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unsupported protocol version","data":{"supported":["2026-07-28"]}}}"#, m),
            // -32020: a 2026-07-28 code, on 400 as the spec answers it.
            ("-32020", 400, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"Missing MCP-Protocol-Version header"}}"#, m),
            ("-32020 without an id", 400, r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"Header mismatch"}}"#, m),
            ("-32020 with 200", 200, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"x"}}"#, AsIs),
            // -32601: only a modern-only server does not know `initialize`.
            ("-32601 with 404", 404, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}"#, m),
            ("-32601 with 200", 200, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}"#, m),
            ("-32601 with 400", 400, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}"#, m),
            // A modern result.
            ("modern protocolVersion", 200, r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2026-07-28","capabilities":{}}}"#, m),
            ("discover-shaped", 200, r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s","version":"1"}}}}"#, m),
            ("discover-shaped, nothing shared", 200, r#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2027-01-01"]}}"#, AsIs),
            ("unknown newer protocolVersion", 200, r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2027-01-01"}}"#, AsIs),
        ];
        for (name, status, body, want) in cases {
            assert_eq!(detect(*status, body.as_bytes()), *want, "{name}");
        }
    }

    #[test]
    fn eras() {
        assert_eq!(era_of(None), Ok(Era::Legacy));
        assert_eq!(era_of(Some("2025-06-18")), Ok(Era::Legacy));
        assert_eq!(era_of(Some("2026-07-28")), Ok(Era::Modern));
        assert_eq!(era_of(Some("2027-01-01")), Ok(Era::Modern));
        assert!(era_of(Some("2025-01-01")).is_err());
        assert!(era_of(Some("latest")).is_err());
    }
}
