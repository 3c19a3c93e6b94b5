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

fn is_date(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

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
