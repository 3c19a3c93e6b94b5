//! Resource URIs on the merged endpoint name their server, as tool names do: two servers may
//! offer the same URI (two copies of one server, say), and a client must be able to read and
//! subscribe to each. `mcpgate://<server>/<the server's own URI>` — the server as its tools'
//! prefix names it (`config::resource_namespace`: its `prefix`, or its name made safe; only
//! `A-Z a-z 0-9 _ -`, so a valid host, and unique among the servers), then
//! the URI unchanged, so the form is reversible, readable, and a template stays a template
//! (`mcpgate://local/demo://resource/{id}`). A URI as the server wrote it is taken too, and
//! routed to the server that lists it.

const SCHEME: &str = "mcpgate://";

/// `uri` of the server known as `ns`, as the merged endpoint shows it.
pub fn namespaced(ns: &str, uri: &str) -> String {
    format!("{SCHEME}{ns}/{uri}")
}

/// The server (`ns`) and its own URI, for a URI the merged endpoint showed.
pub fn split(uri: &str) -> Option<(&str, &str)> {
    let (ns, original) = uri.strip_prefix(SCHEME)?.split_once('/')?;
    (!ns.is_empty() && !original.is_empty()).then_some((ns, original))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespaced_uri_gives_back_its_server_and_uri() {
        for uri in ["demo://resource/static/1", "file:///tmp/a b", "urn:x:y", "demo://resource/{id}", "mcpgate://a/b"] {
            let n = namespaced("local-2_x", uri);
            assert_eq!(split(&n), Some(("local-2_x", uri)), "{n}");
        }
        for not in ["demo://x", "mcpgate://", "mcpgate://local", "mcpgate://local/", "mcpgate:///x"] {
            assert_eq!(split(not), None, "{not}");
        }
    }
}
