//! From the positioned JSON tree to a `Config`, collecting every problem on the way (a user fixes
//! a file in one go, not one error per run). Keys nobody knows are refused, with a suggestion;
//! keys other MCP clients write into the same file are accepted: at the top (`preferences`,
//! `projects`, `inputs`, … — all but a likely typo of ours), and in a server's entry those that
//! change nothing about reaching it (`disabled`, `autoApprove`, …). `mcpgate` stays strict.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::json::{Node, Pos, Value};
use super::*;

mod auth;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `mcpServers.github.url`
    pub path: String,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.pos, self.message)
        } else {
            write!(f, "{}: {}: {}", self.pos, self.path, self.message)
        }
    }
}

/// The longest tool or prompt name the spec allows.
pub const MAX_NAME: usize = 128;

/// Problems listed before the rest are only counted: a generated file with a mistake repeated
/// 900,000 times needs one line saying so, not 900,000 (nor the time and memory to format them).
pub const MAX_PROBLEMS: usize = 500;

struct Check<'e> {
    problems: Vec<Problem>,
    /// Problems found beyond `MAX_PROBLEMS`.
    more: usize,
    env: &'e dyn Fn(&str) -> Option<String>,
}

type Members<'a> = &'a [(String, Pos, Node)];

impl Check<'_> {
    fn fail(&mut self, path: &str, pos: Pos, message: impl Into<String>) {
        if self.full() {
            self.more += 1;
        } else {
            self.problems.push(Problem { path: path.to_owned(), pos, message: message.into() });
        }
    }

    fn full(&self) -> bool {
        self.problems.len() >= MAX_PROBLEMS
    }

    /// Problems found so far, listed or not.
    fn seen(&self) -> usize {
        self.problems.len() + self.more
    }

    /// The listed problems, and a last line counting the others.
    fn finish(mut self) -> Vec<Problem> {
        if self.more > 0 {
            self.problems.push(Problem {
                path: String::new(),
                pos: Pos { line: 1, col: 1 },
                message: format!("and {} more problems, not listed", self.more),
            });
        }
        self.problems
    }

    /// The members of an object, refusing keys outside `known` (and `ignored`: other clients' keys).
    fn object<'a>(&mut self, node: &'a Node, path: &str, known: &[&str], ignored: &[&str]) -> Option<Members<'a>> {
        let Value::Object(members) = &node.value else {
            self.fail(path, node.pos, format!("must be an object, not {}", node.kind()));
            return None;
        };
        for (key, pos, _) in members {
            if !known.contains(&key.as_str()) && !ignored.contains(&key.as_str()) {
                if self.full() {
                    self.more += 1;
                    continue;
                }
                let hint = suggest(key, known).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
                self.fail(&join(path, key), *pos, format!("unknown key{hint}; known keys: {}", known.join(", ")));
            }
        }
        Some(members)
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        self.string_at(node, || path.to_owned())
    }

    /// `string` with the path built only for a problem: a map or list of 100,000 strings
    /// would otherwise spend most of its time making paths nobody reads.
    fn string_at(&mut self, node: &Node, path: impl FnOnce() -> String) -> Option<String> {
        match &node.value {
            Value::String(s) => match expand::expand(s, self.env) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.fail(&path(), node.pos, e);
                    None
                }
            },
            _ => {
                self.fail(&path(), node.pos, format!("must be a string, not {}", node.kind()));
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.fail(path, node.pos, format!("must be true or false, not {}", node.kind()));
                None
            }
        }
    }

    fn strings(&mut self, node: &Node, path: &str) -> Vec<String> {
        let Value::Array(items) = &node.value else {
            self.fail(path, node.pos, format!("must be an array of strings, not {}", node.kind()));
            return Vec::new();
        };
        items.iter().enumerate().filter_map(|(i, n)| self.string_at(n, || format!("{path}[{i}]"))).collect()
    }

    /// Each key with its value's position and the value, expanded.
    fn string_map(&mut self, node: &Node, path: &str) -> Vec<(String, Pos, String)> {
        let Value::Object(members) = &node.value else {
            self.fail(path, node.pos, format!("must be an object of strings, not {}", node.kind()));
            return Vec::new();
        };
        members
            .iter()
            .filter_map(|(k, _, v)| self.string_at(v, || join(path, k)).map(|s| (k.clone(), v.pos, s)))
            .collect()
    }

    /// `"30s"`, `"5m"`, or a number of seconds (what other clients write for `timeout`).
    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let parsed = match &node.value {
            Value::Number(n) if *n >= 0.0 => Duration::try_from_secs_f64(*n).map_err(|_| "out of range".to_owned()),
            Value::String(_) => {
                let s = self.string(node, path)?;
                super::parse_duration(&s)
            }
            _ => Err(format!("must be a duration such as \"30s\" or a number of seconds, not {}", node.kind())),
        };
        parsed.map_err(|e| self.fail(path, node.pos, e)).ok()
    }

    /// A duration above zero (a limit of zero would refuse everything).
    fn positive_duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let d = self.duration(node, path)?;
        if d.is_zero() {
            self.fail(path, node.pos, "must be longer than zero");
            return None;
        }
        Some(d)
    }

    fn positive(&mut self, node: &Node, path: &str) -> Option<u64> {
        let n = self.count(node, path)?;
        if n == 0 {
            self.fail(path, node.pos, "must be at least 1");
            return None;
        }
        Some(n)
    }

    fn count(&mut self, node: &Node, path: &str) -> Option<u64> {
        match node.value {
            Value::Number(n) if n >= 0.0 && n.fract() == 0.0 && n < 1e15 => Some(n as u64),
            _ => {
                self.fail(path, node.pos, format!("must be a whole number, not {}", node.kind()));
                None
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (true, false) => format!("[{key:?}]"),
        (false, true) => format!("{path}.{key}"),
        (false, false) => format!("{path}[{key:?}]"),
    }
}

fn get<'a>(members: Members<'a>, key: &str) -> Option<&'a Node> {
    get_member(members, key).map(|(_, _, n)| n)
}

/// A member with its key and the key's position.
fn get_member<'a>(members: Members<'a>, key: &str) -> Option<(&'a str, &'a Pos, &'a Node)> {
    members.iter().find(|(k, _, _)| k == key).map(|(k, p, n)| (k.as_str(), p, n))
}

/// The known key closest to a mistyped one (edit distance ≤ 2, or a case difference).
fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .copied()
        .map(|k| (distance(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Names the spec allows for tools and prompts: 1–128 of `A-Z a-z 0-9 _ - . /`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b))
}

const SERVER_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "type",
    "transport",
    "enabled",
    "timeout",
    "prefix",
    "tools",
    "forwardClientToken",
    "auth",
    "stateful",
    "restart",
];
/// Keys other clients keep in a server's entry that change nothing about how mcpgate reaches it:
/// accepted, and `disabled` honoured. Cline's and Windsurf's approvals, VS Code's development
/// mode (`dev`), gallery install records (`gallery`, `version`) and sandbox rules (`sandbox`:
/// `sandboxEnabled: true` itself is refused, mcpgate runs no sandbox). `envFile` is accepted
/// and not read (ARCHITECTURE.md says so).
const FOREIGN_SERVER_KEYS: &[&str] = &[
    "disabled",
    "autoApprove",
    "alwaysAllow",
    "description",
    "name",
    "envFile",
    "dev",
    "gallery",
    "version",
    "sandbox",
    "sandboxEnabled",
];
/// Where the servers are: Claude Desktop's, Claude Code's and Cursor's key, and VS Code's
/// (`.vscode/mcp.json`). A file holds one of them.
const SECTIONS: &[&str] = &["mcpServers", "servers"];
const GATEWAY_KEYS: &[&str] = &[
    "listen",
    "separator",
    "cacheTtl",
    "allowHosts",
    "allowOrigins",
    "maxBody",
    "sessionTtl",
    "shutdownGrace",
    "threads",
    "headTimeout",
    "bodyTimeout",
    "minBodyRate",
    "idleTimeout",
    "writeTimeout",
    "maxConnections",
    "maxConnectionsPerClient",
    "maxBufferedBodies",
    "maxSessions",
    "maxSessionsPerClient",
    "ready",
    "adminToken",
    "auth",
    "audit",
];

/// More event loops than this is a typo, not a machine.
const MAX_THREADS: u64 = 256;

pub(super) fn config(root: &Node, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<Problem>> {
    let mut c = Check { problems: Vec::new(), more: 0, env };
    let Value::Object(top) = &root.value else {
        c.fail("", root.pos, format!("must be an object, not {}", root.kind()));
        return Err(c.finish());
    };
    let top: Members = top;
    // The file is often another client's own (Claude Desktop's `preferences`, `~/.claude.json`'s
    // `projects`, VS Code's `inputs`): keys that are not ours are left alone, unless one looks
    // like a typo of ours — a misspelt `mcpgate` must not silently leave the defaults in force.
    let ours = ["mcpgate", SECTIONS[0], SECTIONS[1]];
    let mut ignored = Vec::new();
    for (key, pos, _) in top {
        if ours.contains(&key.as_str()) {
            continue;
        }
        match suggest(key, &ours) {
            Some(s) => c.fail(&join("", key), *pos, format!("unknown key (did you mean {s:?}?)")),
            None => ignored.push(key.clone()),
        }
    }
    let gateway = match get(top, "mcpgate") {
        Some(n) => gateway(&mut c, n),
        None => Some(default_gateway()),
    };
    let mut servers = Vec::new();
    let section = match (get_member(top, SECTIONS[0]), get_member(top, SECTIONS[1])) {
        (Some(a), Some((_, pos, _))) => {
            c.fail(
                SECTIONS[1],
                *pos,
                format!(
                    "the servers are in {} already (line {}): a file holds either {} (Claude, Cursor) or {} (VS Code), not both",
                    SECTIONS[0], a.1.line, SECTIONS[0], SECTIONS[1]
                ),
            );
            Some(a)
        }
        (a, b) => a.or(b),
    };
    match section {
        None => c.fail(
            "mcpServers",
            root.pos,
            "is missing: the servers to serve go in an \"mcpServers\" object (or \"servers\", as VS Code writes it)",
        ),
        Some((key, _, node)) => match &node.value {
            // Every key is a server's name.
            Value::Object(members) if members.is_empty() => c.fail(key, node.pos, "holds no server"),
            Value::Object(members) => {
                for (name, pos, n) in members {
                    if let Some(s) = server(&mut c, key, name, *pos, n) {
                        servers.push((s, *pos));
                    }
                }
            }
            _ => c.fail(key, node.pos, format!("must be an object of servers, not {}", node.kind())),
        },
    }
    servers.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    if let (Some(g), Some((key, _, node))) = (&gateway, section) {
        prefixes(&mut c, &servers, &g.separator, key, node.pos);
        per_user_sign_ins(&mut c, &servers, g, key);
    }
    match (gateway, c.seen() == 0) {
        (Some(gateway), true) => {
            let servers: Vec<Server> = servers.into_iter().map(|(s, _)| s).collect();
            let enabled = servers.iter().filter(|s| s.enabled).count();
            Ok(Config { gateway, servers, enabled, ignored })
        }
        _ => Err(c.finish()),
    }
}

fn default_gateway() -> Gateway {
    Gateway {
        listen: "127.0.0.1:8090".parse().expect("a literal address"),
        separator: "__".into(),
        cache_ttl: Duration::from_secs(300),
        allow_hosts: Vec::new(),
        allow_origins: Vec::new(),
        max_body: 4 * 1024 * 1024,
        session_ttl: Duration::from_secs(3600),
        threads: None,
        limits: crate::http::limits::Limits::default(),
        sessions: crate::mcp::session::Limits::default(),
        ready: super::Ready::Any,
        admin_token: None,
        auth: super::Auth::default(),
        audit: None,
    }
}

fn gateway(c: &mut Check, node: &Node) -> Option<Gateway> {
    let members = c.object(node, "mcpgate", GATEWAY_KEYS, &[])?;
    let mut g = default_gateway();
    let before = c.seen();
    for (key, _, n) in members {
        let path = join("mcpgate", key);
        match key.as_str() {
            "listen" => {
                if let Some(s) = c.string(n, &path) {
                    match s.parse() {
                        Ok(a) => g.listen = a,
                        Err(_) => c.fail(&path, n.pos, format!("{s:?} is not an address such as 127.0.0.1:8090")),
                    }
                }
            }
            "separator" => {
                if let Some(s) = c.string(n, &path) {
                    if s.is_empty() || !valid_name(&s) {
                        c.fail(
                            &path,
                            n.pos,
                            "must be one or more of A-Z a-z 0-9 _ - . / (the characters tool names may hold)",
                        );
                    } else {
                        g.separator = s;
                    }
                }
            }
            "cacheTtl" => g.cache_ttl = c.duration(n, &path).unwrap_or(g.cache_ttl),
            "sessionTtl" => g.session_ttl = c.duration(n, &path).unwrap_or(g.session_ttl),
            "shutdownGrace" => g.limits.shutdown_grace = c.duration(n, &path).unwrap_or(g.limits.shutdown_grace),
            "allowHosts" => g.allow_hosts = c.strings(n, &path),
            "allowOrigins" => g.allow_origins = c.strings(n, &path),
            "maxBody" => g.max_body = c.count(n, &path).map(|v| v as usize).unwrap_or(g.max_body),
            "headTimeout" => g.limits.head_timeout = c.positive_duration(n, &path).unwrap_or(g.limits.head_timeout),
            "bodyTimeout" => g.limits.body_timeout = c.positive_duration(n, &path).unwrap_or(g.limits.body_timeout),
            "idleTimeout" => g.limits.idle_timeout = c.positive_duration(n, &path).unwrap_or(g.limits.idle_timeout),
            "writeTimeout" => g.limits.write_timeout = c.positive_duration(n, &path).unwrap_or(g.limits.write_timeout),
            "minBodyRate" => g.limits.min_body_rate = c.positive(n, &path).unwrap_or(g.limits.min_body_rate),
            "maxConnections" => {
                g.limits.max_connections = c.positive(n, &path).map_or(g.limits.max_connections, |v| v as usize)
            }
            // 0: no limit of its own (a gateway behind a load balancer sees one address).
            "maxConnectionsPerClient" => {
                g.limits.max_connections_per_client =
                    c.count(n, &path).map_or(g.limits.max_connections_per_client, |v| v as usize)
            }
            "maxBufferedBodies" => {
                g.limits.max_buffered_bodies = c.positive(n, &path).map_or(g.limits.max_buffered_bodies, |v| v as usize)
            }
            "maxSessions" => match c.count(n, &path) {
                Some(0) => c.fail(&path, n.pos, "must be at least 1"),
                Some(v) => g.sessions.total = v as usize,
                None => {}
            },
            "maxSessionsPerClient" => match c.count(n, &path) {
                Some(0) => c.fail(&path, n.pos, "must be at least 1"),
                Some(v) => g.sessions.per_client = v as usize,
                None => {}
            },
            // Compared in constant time; a short one could be guessed. Never printed.
            "adminToken" => match c.string(n, &path) {
                Some(t) if t.len() >= 16 => g.admin_token = Some(super::Secret(t)),
                Some(_) => c.fail(&path, n.pos, "must be at least 16 characters (a short token can be guessed)"),
                None => {}
            },
            "auth" => g.auth = auth::auth(c, n, &path),
            "audit" => g.audit = auth::audit(c, n, &path),
            "ready" => match c.string(n, &path).as_deref() {
                Some("any") => g.ready = super::Ready::Any,
                Some("all") => g.ready = super::Ready::All,
                Some(other) => c.fail(&path, n.pos, format!("must be \"any\" or \"all\", not {other:?}")),
                None => {}
            },
            "threads" => match c.count(n, &path) {
                Some(t @ 1..=MAX_THREADS) => g.threads = Some(t as usize),
                Some(t) => {
                    c.fail(&path, n.pos, format!("must be 1 to {MAX_THREADS} (or left out: one per core), not {t}"))
                }
                None => {}
            },
            _ => {}
        }
    }
    // The codec refuses what the handler would: one limit, said once in the file.
    g.limits.max_body = g.max_body;
    if g.limits.max_buffered_bodies < g.max_body {
        c.fail(
            "mcpgate.maxBufferedBodies",
            node.pos,
            format!("must be at least maxBody ({} bytes): a body that size could never be read", g.max_body),
        );
    }
    // One address cannot be allowed more than everyone together.
    if g.sessions.per_client > g.sessions.total
        && let Some((_, pos, _)) = members.iter().find(|(k, _, _)| k == "maxSessionsPerClient" || k == "maxSessions")
    {
        c.fail(
            "mcpgate.maxSessionsPerClient",
            *pos,
            format!("must not exceed maxSessions ({} > {})", g.sessions.per_client, g.sessions.total),
        );
    }
    (c.seen() == before).then_some(g)
}

fn server(c: &mut Check, section: &str, name: &str, pos: Pos, node: &Node) -> Option<Server> {
    let path = join(section, name);
    // As Claude accepts them ("my memory", "time.v2"): kept as written, their tools' prefix
    // made of the safe characters (`name_prefix`). Not empty, and no control characters: a name
    // is printed in logs and metrics labels.
    if name.is_empty() || name.chars().any(char::is_control) {
        c.fail(&path, pos, "a server name must not be empty or hold control characters (line breaks, tabs)");
    }
    let members = c.object(node, &path, SERVER_KEYS, FOREIGN_SERVER_KEYS)?;
    let before = c.seen();
    let field = |k: &str| get(members, k);
    let sub = |k: &str| join(&path, k);

    let declared = match (field("type"), field("transport")) {
        (Some(n), _) => c.string(n, &sub("type")).map(|t| (t, n.pos, "type")),
        (None, Some(n)) => c.string(n, &sub("transport")).map(|t| (t, n.pos, "transport")),
        (None, None) => None,
    };
    let transport = match (field("command"), field("url")) {
        (Some(_), Some(u)) => {
            c.fail(&sub("url"), u.pos, "a server has either a command (stdio) or a url (remote), not both");
            None
        }
        (None, None) => {
            c.fail(&path, node.pos, "needs a \"command\" (a stdio server) or a \"url\" (a remote server)");
            None
        }
        (Some(cmd), None) => {
            if let Some((t, p, k)) = &declared
                && t != "stdio"
            {
                c.fail(&sub(k), *p, format!("{t:?} is a remote transport, but this server has a command"));
            }
            for k in ["headers"] {
                if let Some(n) = field(k) {
                    c.fail(&sub(k), n.pos, "applies to remote servers only");
                }
            }
            let command = c.string(cmd, &sub("command")).filter(|s| !s.trim().is_empty());
            if command.is_none() && matches!(cmd.value, Value::String(_)) {
                c.fail(&sub("command"), cmd.pos, "is empty");
            }
            let args = field("args").map(|n| c.strings(n, &sub("args"))).unwrap_or_default();
            let env = field("env")
                .map(|n| c.string_map(n, &sub("env")).into_iter().map(|(k, _, v)| (k, v)).collect())
                .unwrap_or_default();
            let cwd = field("cwd").and_then(|n| c.string(n, &sub("cwd"))).map(PathBuf::from);
            let stateful = field("stateful").and_then(|n| c.bool(n, &sub("stateful"))).unwrap_or(false);
            command.map(|command| Transport::Stdio { command, args, env, cwd, stateful })
        }
        (None, Some(u)) => {
            for k in ["args", "env", "cwd", "stateful"] {
                if let Some(n) = field(k) {
                    c.fail(&sub(k), n.pos, "applies to stdio servers only");
                }
            }
            let kind = match &declared {
                None => Some(RemoteKind::Auto),
                Some((t, p, k)) => match t.as_str() {
                    "http" | "streamable-http" | "streamableHttp" | "streamable_http" => {
                        Some(RemoteKind::StreamableHttp)
                    }
                    "sse" => Some(RemoteKind::Sse),
                    "stdio" => {
                        c.fail(&sub(k), *p, "\"stdio\" needs a command, but this server has a url");
                        None
                    }
                    other => {
                        c.fail(
                            &sub(k),
                            *p,
                            format!("{other:?} is not a transport (use \"http\", \"sse\" or \"stdio\")"),
                        );
                        None
                    }
                },
            };
            let url = c.string(u, &sub("url")).and_then(|s| match crate::url::parse(&s) {
                Ok(uri) => Some(uri),
                Err(e) => {
                    c.fail(&sub("url"), u.pos, e);
                    None
                }
            });
            let mut headers = Vec::new();
            if let Some(h) = field("headers") {
                for (k, pos, v) in c.string_map(h, &sub("headers")) {
                    let hp = join(&sub("headers"), &k);
                    // Never the value in a message: it is often the credential.
                    match (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
                        (Ok(name), Ok(mut value)) => {
                            value.set_sensitive(true);
                            headers.push((name, value));
                        }
                        (Err(_), _) => c.fail(&hp, pos, "is not a valid header name"),
                        (_, Err(_)) => c.fail(
                            &hp,
                            pos,
                            "the value is not a valid header value (control characters or line breaks?)",
                        ),
                    }
                }
            }
            match (url, kind) {
                (Some(url), Some(kind)) => Some(Transport::Remote { url, kind, headers }),
                _ => None,
            }
        }
    };

    if let Some(n) = field("sandboxEnabled")
        && c.bool(n, &sub("sandboxEnabled")) == Some(true)
    {
        c.fail(
            &sub("sandboxEnabled"),
            n.pos,
            "mcpgate runs no sandbox: this server would run without the one VS Code gives it (set it false to run it as it is)",
        );
    }
    let disabled = field("disabled").and_then(|n| c.bool(n, &sub("disabled"))).unwrap_or(false);
    let enabled = field("enabled").and_then(|n| c.bool(n, &sub("enabled"))).unwrap_or(!disabled);
    let timeout = field("timeout").and_then(|n| c.duration(n, &sub("timeout"))).unwrap_or(Duration::from_secs(60));
    let prefix = field("prefix").and_then(|n| {
        let p = c.string(n, &sub("prefix"))?;
        if !p.is_empty() && !valid_name(&p) {
            c.fail(&sub("prefix"), n.pos, "must be empty or of A-Z a-z 0-9 _ - . /");
        }
        Some(p)
    });
    let tools = field("tools").map(|n| tool_filter(c, n, &sub("tools"))).unwrap_or_default();
    let forward_client_token =
        field("forwardClientToken").and_then(|n| c.bool(n, &sub("forwardClientToken"))).unwrap_or(false);
    let credential = field("auth").and_then(|n| credential(c, n, &sub("auth")));
    if let (true, Some(n)) = (forward_client_token && credential.is_some(), field("auth")) {
        c.fail(
            &sub("auth"),
            n.pos,
            "conflicts with forwardClientToken: the server gets either the caller's token or mcpgate's",
        );
    }
    let restart = field("restart").map(|n| restart(c, n, &sub("restart"))).unwrap_or_default();
    let transport = transport?;
    if let (Some(Credential::TokenExchange(_)), Transport::Stdio { .. }, Some(n)) =
        (&credential, &transport, field("auth"))
    {
        c.fail(&sub("auth"), n.pos, "tokenExchange is for remote servers: a stdio server takes no token");
    }
    (c.seen() == before).then(|| Server {
        name: name.to_owned(),
        enabled,
        transport,
        timeout,
        prefix,
        tools,
        forward_client_token,
        credential,
        restart,
    })
}

fn tool_filter(c: &mut Check, node: &Node, path: &str) -> ToolFilter {
    let Some(members) = c.object(node, path, &["include", "exclude"], &[]) else { return ToolFilter::default() };
    let list = |c: &mut Check, k: &str| get(members, k).map(|n| c.strings(n, &join(path, k))).unwrap_or_default();
    ToolFilter { include: list(c, "include"), exclude: list(c, "exclude") }
}

fn credential(c: &mut Check, node: &Node, path: &str) -> Option<Credential> {
    let members = c.object(node, path, &["bearerEnv", "bearerFile", "tokenCommand", "oauth", "tokenExchange"], &[])?;
    if members.len() != 1 {
        c.fail(path, node.pos, "names exactly one of bearerEnv, bearerFile, tokenCommand, oauth, tokenExchange");
        return None;
    }
    let (key, _, n) = &members[0];
    if key == "oauth" {
        return oauth(c, n, &join(path, key)).map(Credential::OAuth);
    }
    if key == "tokenExchange" {
        return token_exchange(c, n, &join(path, key)).map(Credential::TokenExchange);
    }
    let v = c.string(n, &join(path, key))?;
    Some(match key.as_str() {
        "bearerEnv" => Credential::Env(v),
        "bearerFile" => Credential::File(PathBuf::from(v)),
        _ => Credential::Command(v),
    })
}

fn token_exchange(c: &mut Check, node: &Node, path: &str) -> Option<crate::oauth_client::exchange::Settings> {
    let keys = ["issuer", "clientId", "clientSecret", "audience", "resource", "scopes"];
    let members = c.object(node, path, &keys, &[])?;
    let before = c.seen();
    let text = |c: &mut Check, k: &str| get(members, k).and_then(|n| c.string(n, &join(path, k)));
    let issuer = text(c, "issuer");
    match (&issuer, get(members, "issuer")) {
        (Some(i), Some(n)) => {
            if let Err(e) = crate::url::parse(i) {
                c.fail(&join(path, "issuer"), n.pos, e);
            }
        }
        _ => c.fail(&join(path, "issuer"), node.pos, "is required: whose token endpoint exchanges the tokens"),
    }
    let client_id = text(c, "clientId");
    if client_id.is_none() {
        c.fail(&join(path, "clientId"), node.pos, "is required: the gateway exchanges as a client of the issuer");
    }
    let resource = text(c, "resource");
    if let (Some(r), Some(n)) = (&resource, get(members, "resource"))
        && let Err(e) = crate::url::check_identifier(r)
    {
        c.fail(&join(path, "resource"), n.pos, e);
    }
    let exchange = crate::oauth_client::exchange::Settings {
        issuer: issuer.unwrap_or_default(),
        client_id: client_id.unwrap_or_default(),
        client_secret: text(c, "clientSecret"),
        audience: text(c, "audience"),
        resource,
        scopes: text(c, "scopes"),
    };
    (c.seen() == before).then_some(exchange)
}

fn oauth(c: &mut Check, node: &Node, path: &str) -> Option<OAuth> {
    let keys = ["issuer", "clientId", "clientSecret", "scopes", "resource", "grant", "perUser"];
    let members = c.object(node, path, &keys, &[])?;
    let before = c.seen();
    let text = |c: &mut Check, k: &str| get(members, k).and_then(|n| c.string(n, &join(path, k)));
    let issuer = text(c, "issuer");
    if let (Some(i), Some(n)) = (&issuer, get(members, "issuer"))
        && let Err(e) = crate::url::parse(i)
    {
        c.fail(&join(path, "issuer"), n.pos, e);
    }
    let client_id = text(c, "clientId");
    let client_secret = text(c, "clientSecret");
    let scopes = text(c, "scopes");
    let resource = text(c, "resource");
    if let (Some(r), Some(n)) = (&resource, get(members, "resource"))
        && let Err(e) = crate::url::check_identifier(r)
    {
        c.fail(&join(path, "resource"), n.pos, e);
    }
    let client_credentials = match (text(c, "grant").as_deref(), get(members, "grant")) {
        (None, _) | (Some("authorization-code"), _) => false,
        (Some("client-credentials"), _) => true,
        (Some(other), Some(n)) => {
            c.fail(
                &join(path, "grant"),
                n.pos,
                format!("{other:?} is not a grant (use \"client-credentials\" or \"authorization-code\")"),
            );
            false
        }
        (Some(_), None) => false,
    };
    if client_credentials && client_id.is_none() {
        c.fail(path, node.pos, "client credentials need a clientId");
    }
    let per_user = get(members, "perUser").and_then(|n| c.bool(n, &join(path, "perUser"))).unwrap_or(false);
    if per_user && client_credentials {
        c.fail(
            &join(path, "perUser"),
            node.pos,
            "client credentials sign no user in: perUser needs authorization-code",
        );
    }
    (c.seen() == before).then_some(OAuth {
        issuer,
        client_id,
        client_secret,
        scopes,
        resource,
        client_credentials,
        per_user,
    })
}

/// A user's own sign-in to a server happens in their browser, at the gateway: which must know who
/// the browser's user is (its own sign-in, `oauth` mode) and where it is reached (`publicUrl`).
fn per_user_sign_ins(c: &mut Check, servers: &[(Server, Pos)], g: &Gateway, section: &str) {
    for (s, pos) in servers {
        let per_user = matches!(&s.credential, Some(Credential::OAuth(o)) if o.per_user);
        if per_user && g.auth.oauth.is_none() {
            c.fail(
                &format!("{}.auth.oauth.perUser", join(section, &s.name)),
                *pos,
                "needs mcpgate.auth.mode \"oauth\": users sign in to this server in their browser, through the gateway, which must know who they are",
            );
        }
        if per_user && matches!(s.transport, Transport::Stdio { .. }) {
            c.fail(
                &format!("{}.auth", join(section, &s.name)),
                *pos,
                "perUser is for remote servers: a stdio server takes no token",
            );
        }
    }
}

fn restart(c: &mut Check, node: &Node, path: &str) -> Restart {
    let mut r = Restart::default();
    let Some(members) = c.object(node, path, &["maxAttempts", "initialDelay", "maxDelay"], &[]) else { return r };
    for (key, _, n) in members {
        let p = join(path, key);
        match key.as_str() {
            "maxAttempts" => {
                r.max_attempts = c.count(n, &p).map(|v| v.min(u32::MAX as u64) as u32).unwrap_or(r.max_attempts)
            }
            "initialDelay" => r.initial = c.duration(n, &p).unwrap_or(r.initial),
            _ => r.max = c.duration(n, &p).unwrap_or(r.max),
        }
    }
    if r.initial > r.max {
        c.fail(path, node.pos, "initialDelay is longer than maxDelay");
    }
    r
}

/// Prefixes must keep the servers' names apart: two servers with one prefix would mix their tools.
/// One pass with a table of the prefixes seen (a file may hold 100,000 servers). Both servers'
/// paths are named: `"time.v2"` and `time_v2` meet as `time_v2__`.
fn prefixes(c: &mut Check, servers: &[(Server, Pos)], sep: &str, section: &str, section_pos: Pos) {
    let enabled = servers.iter().filter(|(s, _)| s.enabled).count();
    let mut seen: HashMap<String, &str> = HashMap::with_capacity(enabled);
    let mut unprefixed = 0;
    for (s, pos) in servers.iter().filter(|(s, _)| s.enabled) {
        let p = effective_prefix(s, enabled, sep);
        if p.is_empty() {
            unprefixed += 1;
            continue;
        }
        match seen.entry(p) {
            Entry::Occupied(other) => c.fail(
                &join(section, &s.name),
                *pos,
                format!(
                    "has the same name prefix ({:?}) as {}: their tools would mix (give one a \"prefix\")",
                    other.key(),
                    join(section, other.get())
                ),
            ),
            Entry::Vacant(slot) => {
                slot.insert(&s.name);
            }
        }
    }
    if enabled > 1 && unprefixed > 1 {
        c.fail(section, section_pos, "more than one server has an empty prefix: their tool names may collide (collisions are checked again when they list their tools)");
    }
    // Resource URIs on the merged endpoint name their server (`resource_namespace`): two servers
    // named alike there would send one's reads to the other. (Those whose tool prefixes meet
    // were told so above.)
    let mut namespaces: HashMap<Cow<'_, str>, &Server> = HashMap::with_capacity(enabled);
    for (s, pos) in servers.iter().filter(|(s, _)| s.enabled) {
        match namespaces.entry(resource_namespace(s)) {
            Entry::Occupied(other)
                if effective_prefix(s, enabled, sep) == effective_prefix(other.get(), enabled, sep) => {}
            Entry::Occupied(other) => c.fail(
                &join(section, &s.name),
                *pos,
                format!(
                    "its resource URIs would be named as {}'s (mcpgate://{}/…): give one of them another \"prefix\"",
                    join(section, &other.get().name),
                    other.key()
                ),
            ),
            Entry::Vacant(slot) => {
                slot.insert(s);
            }
        }
    }
}

/// How the merged endpoint's resource URIs name a server (`mcpgate://<this>/…`): its `prefix`
/// when one is set and holds only `A-Z a-z 0-9 _ -` (a URI's host), else its name made so.
pub fn resource_namespace(s: &Server) -> Cow<'_, str> {
    match &s.prefix {
        Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {
            Cow::Borrowed(p)
        }
        _ => name_prefix(&s.name),
    }
}

/// What a server's tool and prompt names start with.
pub fn effective_prefix(s: &Server, enabled_servers: usize, sep: &str) -> String {
    match &s.prefix {
        Some(p) if p.is_empty() => String::new(),
        Some(p) => format!("{p}{sep}"),
        None if enabled_servers == 1 => String::new(),
        None => format!("{}{sep}", name_prefix(&s.name)),
    }
}

/// A server's name as its tools' and prompts' prefix: as it is when it holds only
/// `A-Z a-z 0-9 _ -`, else with each run of other characters made one `_` (`"time.v2"` →
/// `time_v2`, `"my memory"` → `my_memory`). Claude accepts any name; a tool name may hold only
/// the spec's characters, and `.` and `/` are left out too, so a prefix never looks like a
/// path or a separator of its own. Case is kept: a name valid before keeps its prefix.
pub fn name_prefix(name: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.chars().all(safe) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if safe(c) {
            out.push(c);
        } else if !in_run {
            out.push('_');
        }
        in_run = !safe(c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "TENANT").then(|| "acme".to_owned())
    }

    fn problems(text: &str) -> Vec<String> {
        match super::super::parse(text, &env) {
            Ok(_) => Vec::new(),
            Err(p) => p.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn token_exchange_is_checked_and_only_for_remote_servers() {
        let p = problems(
            r#"{"mcpServers": {"r": {"url": "https://h/mcp", "auth": {"tokenExchange": {"clientSecret": "s3cret-never-shown"}}},
                "s": {"command": "x", "auth": {"tokenExchange": {"issuer": "https://idp", "clientId": "gw"}}}}}"#,
        );
        let has = |path: &str, words: &str| p.iter().any(|x| x.contains(path) && x.contains(words));
        assert!(has("mcpServers.r.auth.tokenExchange.issuer", "required"), "{p:#?}");
        assert!(has("mcpServers.r.auth.tokenExchange.clientId", "required"), "{p:#?}");
        assert!(has("mcpServers.s.auth", "remote servers"), "{p:#?}");
        assert!(!p.iter().any(|x| x.contains("s3cret-never-shown")), "{p:#?}");
        let ok = r#"{"mcpServers": {"r": {"url": "https://h/mcp", "auth": {"tokenExchange": {"issuer": "https://idp", "clientId": "gw", "clientSecret": "x", "audience": "api://mcp"}}}}}"#;
        assert!(problems(ok).is_empty());
    }

    #[test]
    fn per_user_sign_ins_need_the_oauth_mode_and_a_remote_server() {
        let servers = r#"{"r": {"url": "https://h/mcp", "auth": {"oauth": {"perUser": true}}},
                "m": {"url": "https://h/mcp", "auth": {"oauth": {"perUser": true, "clientId": "c", "grant": "client-credentials"}}},
                "s": {"command": "x", "auth": {"oauth": {"perUser": true}}}}"#;
        let p = problems(&format!(r#"{{"mcpServers": {servers}}}"#));
        let has = |path: &str, words: &str| p.iter().any(|x| x.contains(path) && x.contains(words));
        assert!(has("mcpServers.r.auth.oauth.perUser", "mode \"oauth\""), "{p:#?}");
        assert!(has("mcpServers.m.auth.oauth.perUser", "authorization-code"), "{p:#?}");
        assert!(has("mcpServers.s.auth", "remote servers"), "{p:#?}");
        let oauth = r#"{"auth": {"mode": "oauth", "publicUrl": "https://gw.example", "stateDir": "/tmp/mcpgate-x",
                        "provider": {"issuer": "https://idp.example", "clientId": "gw"}}}"#;
        let ok = format!(
            r#"{{"mcpgate": {oauth}, "mcpServers": {{"r": {{"url": "https://h/mcp", "auth": {{"oauth": {{"perUser": true}}}}}}}}}}"#
        );
        assert!(problems(&ok).is_empty(), "{:#?}", problems(&ok));
        let cfg = super::super::parse(&ok, &env).unwrap();
        assert!(cfg.servers[0].per_caller_token(), "a user's own token: listings are never shared");
    }

    #[test]
    fn a_claude_desktop_file_works_unchanged() {
        let text = r#"{
  "mcpServers": {
    "everything": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"], "env": {"A": "1"} },
    "files": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"], "disabled": true, "autoApprove": [] },
    "remote": { "type": "http", "url": "https://mcp.example.com/mcp", "headers": {"X-Tenant": "${TENANT}"} },
    "legacy": { "url": "http://127.0.0.1:9000/sse", "transport": "sse", "timeout": 30 }
  }
}"#;
        let cfg = super::super::parse(text, &env).unwrap();
        let names: Vec<&str> = cfg.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["everything", "files", "legacy", "remote"]);
        assert!(!cfg.servers[1].enabled, "disabled is honoured");
        assert_eq!(cfg.servers[2].timeout, Duration::from_secs(30));
        let Transport::Remote { kind, headers, .. } = &cfg.servers[3].transport else { panic!() };
        assert_eq!(*kind, RemoteKind::StreamableHttp);
        assert_eq!(headers[0].1.to_str().unwrap(), "acme");
        assert_eq!(cfg.gateway.separator, "__");
        assert_eq!(effective_prefix(&cfg.servers[0], 3, "__"), "everything__");
    }

    #[test]
    fn every_problem_with_its_path_and_line() {
        let text = r#"{
  "mcpgate": { "listen": "nowhere", "separatr": ".", "threads": 0 },
  "mcpServers": {
    "bad\tname": { "command": "x" },
    "both": { "command": "x", "url": "http://h/mcp" },
    "none": { "args": [] },
    "url": { "url": "htp://x", "headers": {"X": "${MISSING}"} },
    "typo": { "command": "x", "argz": [], "timeout": "5 days" },
    "auth": { "url": "https://h/mcp", "auth": {"bearerEnv": "T"}, "forwardClientToken": true },
    "mixed": { "command": "x", "type": "sse", "headers": {} }
  }
}"#;
        let p = problems(text);
        let expect = [
            "2:26: mcpgate.listen: \"nowhere\" is not an address",
            "2:37: mcpgate.separatr: unknown key (did you mean \"separator\"?)",
            "2:65: mcpgate.threads: must be 1 to 256 (or left out: one per core), not 0",
            "4:5: mcpServers[\"bad\\tname\"]: a server name must not be empty or hold control characters",
            "5:38: mcpServers.both.url: a server has either a command",
            "6:13: mcpServers.none: needs a \"command\"",
            "7:21: mcpServers.url.url: htp://x/: the scheme must be http or https, not htp",
            "7:49: mcpServers.url.headers.X: the environment variable MISSING is not set",
            "8:31: mcpServers.typo.argz: unknown key (did you mean \"args\"?)",
            "8:54: mcpServers.typo.timeout: \"5 days\": unknown unit",
            "mcpServers.auth.auth: conflicts with forwardClientToken",
            "mcpServers.mixed.type: \"sse\" is a remote transport",
            "mcpServers.mixed.headers: applies to remote servers only",
        ];
        for e in expect {
            assert!(p.iter().any(|l| l.contains(e)), "missing {e:?} in:\n{}", p.join("\n"));
        }
        assert_eq!(problems("{\"mcpServers\": {}}"), ["1:16: mcpServers: holds no server"]);
        let two = r#"{"mcpgate": {"threads": 2}, "mcpServers": {"a": {"command": "x"}}}"#;
        assert_eq!(super::super::parse(two, &env).unwrap().gateway.threads, Some(2));
        assert_eq!(problems("{\"servers\": {}}"), ["1:13: servers: holds no server"]);
        assert_eq!(problems("[]"), ["1:1: must be an object, not an array"]);
        assert!(problems("not json")[0].starts_with("1:1:"));
    }

    #[test]
    fn every_url_is_checked_whole_with_its_path() {
        let remote = |url: &str| format!(r#"{{"mcpServers": {{"r": {{"url": "{url}"}}}}}}"#);
        for (url, says) in [
            (
                "http://127.0.0.1:65616/mcp",
                "1:30: mcpServers.r.url: http://127.0.0.1:65616/mcp: port 65616 is out of range",
            ),
            ("http://127.0.0.1:0/mcp", "mcpServers.r.url: http://127.0.0.1:0/mcp: port 0"),
            ("", "mcpServers.r.url: not a valid URL"),
            ("http:///mcp", "mcpServers.r.url: not a valid URL"),
            ("http://:8080/mcp", "mcpServers.r.url: http://:8080/mcp: the URL has no host"),
            ("ftp://h/x", "mcpServers.r.url: ftp://h/x: the scheme must be http or https"),
        ] {
            let p = problems(&remote(url));
            assert!(p.iter().any(|l| l.contains(says)), "{url:?}: {p:?}");
        }
        let oauth = |k: &str, v: &str| {
            format!(r#"{{"mcpServers": {{"r": {{"url": "https://h/mcp", "auth": {{"oauth": {{"{k}": "{v}"}}}}}}}}}}"#)
        };
        let p = problems(&oauth("issuer", "https://idp:70000"));
        assert!(
            p.iter().any(|l| l.contains("mcpServers.r.auth.oauth.issuer: https://idp:70000/: port 70000")),
            "{p:?}"
        );
        let p = problems(&oauth("resource", "https://h:65616/mcp"));
        assert!(p.iter().any(|l| l.contains("mcpServers.r.auth.oauth.resource: https://h:65616/mcp: port")), "{p:?}");
        assert!(problems(&oauth("resource", "api://0000-1111")).is_empty());
    }

    /// Each row holds a secret (`SECRET`) where a problem is; the problem names its path and
    /// never the secret.
    #[test]
    fn problems_name_the_path_never_the_secret() {
        for (server, path) in [
            (r#"{"url": "ftp://user:SECRET@h/mcp"}"#, "mcpServers.s.url"),
            (r#"{"url": "https://user:SECRET@h/mcp?key=SECRET&${X"}"#, "mcpServers.s.url"),
            (r#"{"url": "https://user:SECRET@h:65616/mcp?token=SECRET"}"#, "mcpServers.s.url"),
            (r#"{"url": "https://user:SECRET/x@h/mcp"}"#, "mcpServers.s.url"),
            (r#"{"url": "https://user:SEC RET@h/mcp"}"#, "mcpServers.s.url"),
            (
                r#"{"url": "https://h/mcp", "headers": {"Authorization": "Bearer SECRET${X"}}"#,
                "mcpServers.s.headers.Authorization",
            ),
            (r#"{"url": "https://h/mcp", "headers": {"Cookie": "s=SECRET"}}"#, "mcpServers.s.headers.Cookie"),
            (r#"{"url": "https://h/mcp", "headers": {"X-Key": "${SECRET VALUE}"}}"#, "mcpServers.s.headers.X-Key"),
            (r#"{"command": "x", "env": {"TOKEN": "SECRET${"}}"#, "mcpServers.s.env.TOKEN"),
            (r#"{"command": "x", "args": ["--token=SECRET${X"]}"#, "mcpServers.s.args[0]"),
            (
                r#"{"url": "https://h/mcp", "auth": {"oauth": {"clientSecret": "SECRET${", "clientId": "c"}}}"#,
                "mcpServers.s.auth.oauth.clientSecret",
            ),
            (
                r#"{"url": "https://h/mcp", "auth": {"oauth": {"issuer": "https://u:SECRET@idp:0"}}}"#,
                "mcpServers.s.auth.oauth.issuer",
            ),
        ] {
            let p = problems(&format!(r#"{{"mcpServers": {{"s": {server}}}}}"#));
            assert!(p.iter().any(|l| l.contains(&format!("{path}: "))), "{server}: {p:?}");
            assert!(!p.iter().any(|l| l.contains("SECRET") || l.contains("SEC RET")), "{server}: {p:?}");
        }
    }

    #[test]
    fn a_mistake_repeated_is_listed_a_bounded_number_of_times() {
        let servers: Vec<String> = (0..2000).map(|i| format!(r#""s{i}": {{"command": "x", "bad": 1}}"#)).collect();
        let p = problems(&format!(r#"{{"mcpServers": {{{}}}}}"#, servers.join(",")));
        assert_eq!(p.len(), MAX_PROBLEMS + 1);
        assert!(p[MAX_PROBLEMS].ends_with("and 1500 more problems, not listed"), "{}", p[MAX_PROBLEMS]);
    }

    #[test]
    fn session_limits_and_readiness() {
        let parse = |g: &str| {
            super::super::parse(&format!(r#"{{"mcpgate": {g}, "mcpServers": {{"a": {{"command": "x"}}}}}}"#), &env)
        };
        let d = parse("{}").unwrap().gateway;
        assert_eq!(d.sessions, crate::mcp::session::Limits { total: 10_000, per_client: 1_000 });
        assert_eq!(d.ready, crate::config::Ready::Any);
        let g = parse(r#"{"maxSessions": 50, "maxSessionsPerClient": 5, "ready": "all"}"#).unwrap().gateway;
        assert_eq!(g.sessions, crate::mcp::session::Limits { total: 50, per_client: 5 });
        assert_eq!(g.ready, crate::config::Ready::All);
        let p = |g: &str| parse(g).unwrap_err().iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n");
        assert!(p(r#"{"maxSessions": 0}"#).contains("mcpgate.maxSessions: must be at least 1"));
        assert!(
            p(r#"{"maxSessions": 10}"#)
                .contains("mcpgate.maxSessionsPerClient: must not exceed maxSessions (1000 > 10)")
        );
        assert!(p(r#"{"ready": "most"}"#).contains("mcpgate.ready: must be \"any\" or \"all\""));
    }

    #[test]
    fn prefixes_keep_servers_apart() {
        let p =
            problems(r#"{"mcpServers": {"a": {"command": "x", "prefix": "p"}, "b": {"command": "y", "prefix": "p"}}}"#);
        assert!(p.iter().any(|l| l.contains("same name prefix")), "{p:?}");
        let p =
            problems(r#"{"mcpServers": {"a": {"command": "x", "prefix": ""}, "b": {"command": "y", "prefix": ""}}}"#);
        assert!(p.iter().any(|l| l.contains("more than one server has an empty prefix")), "{p:?}");
        // Tool prefixes apart (`a.b__`, `x__`), resource namespaces one: `x`'s prefix is no URI
        // host, so its name names it — and `y`'s prefix is that name.
        let p = problems(
            r#"{"mcpServers": {"x": {"command": "x", "prefix": "a.b"}, "y": {"command": "y", "prefix": "x"}}}"#,
        );
        assert!(p.iter().any(|l| l.contains("resource URIs would be named as")), "{p:?}");
        assert!(valid_name("github__create_issue") && !valid_name("bad name") && !valid_name(&"x".repeat(129)));
    }

    /// Names as Claude accepts them are kept; their prefix is made of the characters tool names
    /// may hold, and two names meeting in one prefix are refused, both named.
    #[test]
    fn server_names_are_kept_and_their_prefix_made_safe() {
        for (name, prefix) in [
            ("time.v2", "time_v2"),
            ("my memory", "my_memory"),
            ("a  . b", "a_b"),
            ("GitHub-2_x", "GitHub-2_x"),
            ("café ☕", "caf_"),
            ("..", "_"),
        ] {
            assert_eq!(name_prefix(name), prefix, "{name:?}");
        }
        let cfg = super::super::parse(
            r#"{"mcpServers": {"time.v2": {"command": "x"}, "my memory": {"command": "y"}}}"#,
            &env,
        )
        .unwrap();
        let names: Vec<&str> = cfg.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["my memory", "time.v2"]);
        assert_eq!(effective_prefix(&cfg.servers[1], 2, "__"), "time_v2__");
        assert!(valid_name(&format!("{}tool", effective_prefix(&cfg.servers[0], 2, "__"))));
        let p = problems(
            r#"{"mcpServers": {
  "time_v2": {"command": "x"},
  "time.v2": {"command": "y"}
}}"#,
        );
        assert_eq!(
            p,
            [
                "2:3: mcpServers.time_v2: has the same name prefix (\"time_v2__\") as mcpServers[\"time.v2\"]: their tools would mix (give one a \"prefix\")"
            ]
        );
        // A prefix of one's own settles it; a disabled server takes no prefix.
        assert!(
            problems(r#"{"mcpServers": {"time_v2": {"command": "x"}, "time.v2": {"command": "y", "prefix": "t2"}}}"#)
                .is_empty()
        );
        assert!(
            problems(r#"{"mcpServers": {"time_v2": {"command": "x"}, "time.v2": {"command": "y", "disabled": true}, "z": {"command": "z"}}}"#)
                .is_empty()
        );
        assert!(problems(r#"{"mcpServers": {"": {"command": "x"}}}"#)[0].contains("must not be empty"));
    }

    /// Other clients' top-level keys are ignored (and listed); ours stay strict, and a key that
    /// looks like a typo of ours is not taken for another client's.
    #[test]
    fn other_clients_top_level_keys_are_ignored_ours_are_strict() {
        let text = r#"{
  "isUsingBuiltInNodeForMcp": true,
  "preferences": {"quickEntryShortcut": "off"},
  "globalShortcut": "",
  "numStartups": 12,
  "projects": {"/home/me/x": {"mcpServers": {"bad name	": 1}}},
  "mcpServers": {"time.v2": {"command": "x"}}
}"#;
        let cfg = super::super::parse(text, &env).unwrap();
        assert_eq!(
            cfg.ignored,
            ["isUsingBuiltInNodeForMcp", "preferences", "globalShortcut", "numStartups", "projects"]
        );
        let typo = r#"{"preferences": {}, "mcpgate": {"separatr": "."}, "mcpServers": {"a": {"command": "x"}}}"#;
        let p = problems(typo);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("1:33: mcpgate.separatr: unknown key (did you mean \"separator\"?)"), "{p:?}");
        for (near, says) in
            [("mcpGate", "mcpgate"), ("mcpgat", "mcpgate"), ("mcpServer", "mcpServers"), ("server", "servers")]
        {
            let p = problems(&format!(r#"{{"{near}": {{}}, "mcpServers": {{"a": {{"command": "x"}}}}}}"#));
            assert!(
                p.iter().any(|l| l.contains(&format!("{near}: unknown key (did you mean {says:?}?)"))),
                "{near}: {p:?}"
            );
        }
    }

    /// VS Code's `.vscode/mcp.json`: `servers`, `inputs`, `type` on every server, its own keys.
    #[test]
    fn a_vs_code_file_works_unchanged() {
        let text = r#"{
  "inputs": [{"type": "promptString", "id": "key", "description": "API key", "password": true}],
  "servers": {
    "memory": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"], "envFile": ".env",
               "dev": {"watch": "src/**/*.ts"}, "sandbox": {"filesystem": {"allowWrite": ["/tmp"]}}, "sandboxEnabled": false},
    "github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/", "headers": {"X-Tenant": "${env:TENANT}"},
               "gallery": "https://api.mcp.github.com", "version": "1.0.0"}
  }
}"#;
        let cfg = super::super::parse(text, &env).unwrap();
        assert_eq!(cfg.ignored, ["inputs"]);
        let Transport::Remote { headers, .. } = &cfg.servers[0].transport else { panic!() };
        assert_eq!(headers[0].1.to_str().unwrap(), "acme");
        let p = problems(r#"{"servers": {"a": {"command": "x", "sandboxEnabled": true, "argz": []}}}"#);
        assert!(p.iter().any(|l| l.contains("servers.a.sandboxEnabled: mcpgate runs no sandbox")), "{p:?}");
        assert!(p.iter().any(|l| l.contains("servers.a.argz: unknown key")), "{p:?}");
        let both = problems(
            r#"{"mcpServers": {"a": {"command": "x"}},
"servers": {"b": {"command": "y"}}}"#,
        );
        assert_eq!(
            both,
            [
                "2:1: servers: the servers are in mcpServers already (line 1): a file holds either mcpServers (Claude, Cursor) or servers (VS Code), not both"
            ]
        );
        assert!(problems("{}")[0].contains("mcpServers: is missing"));
    }
}
