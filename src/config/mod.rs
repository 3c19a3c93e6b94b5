//! The `serve` configuration: the `mcpServers` object in the shape Claude Desktop, Claude Code
//! (`.mcp.json`, `~/.claude.json`) and Cursor use, or VS Code's `servers`, so a user's file works
//! unchanged — its other top-level keys ignored, its server names kept as written — with
//! mcpgate's own settings beside it under `"mcpgate"`, checked strictly. Read with positions
//! (`json`), `${VAR}`-expanded (`expand`), and validated in one pass that reports every problem
//! with its path and line; the result is an immutable `Config` of precise types.

pub mod expand;
pub mod json;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

pub use validate::{Problem, effective_prefix as validate_prefix, name_prefix, resource_namespace, valid_name};

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub gateway: Gateway,
    /// Sorted by name; disabled servers are kept (and reported), not started.
    pub servers: Vec<Server>,
    /// How many of `servers` are enabled (asked on every request: a file may hold 100,000
    /// disabled servers).
    pub enabled: usize,
    /// The file's top-level keys that are other clients' (`preferences`, `projects`, `inputs`, …):
    /// left alone, named in a debug log.
    pub ignored: Vec<String>,
}

impl Config {
    /// The server of this name (the list is sorted by name).
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.binary_search_by(|s| s.name.as_str().cmp(name)).ok().map(|i| &self.servers[i])
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub listen: SocketAddr,
    /// Between a server's name and a tool's or prompt's: `<server><sep><name>`.
    pub separator: String,
    /// How long a server's listings are reused (the modern era's `ttlMs` wins when given).
    pub cache_ttl: Duration,
    pub allow_hosts: Vec<String>,
    pub allow_origins: Vec<String>,
    pub max_body: usize,
    pub session_ttl: Duration,
    /// Threads serving client connections, each with its own event loop (`None`: one per core).
    pub threads: Option<usize>,
    /// Timeouts and room for client connections (`maxBody` and `shutdownGrace` included).
    pub limits: crate::http::limits::Limits,
    /// Open client sessions at most, in all and per client address.
    pub sessions: crate::mcp::session::Limits,
    /// When `/readyz` says the gateway is ready.
    pub ready: Ready,
    /// Lets `POST /admin/reload` in from beyond loopback with `Authorization: Bearer <token>`.
    pub admin_token: Option<Secret>,
    /// Who may call the gateway (`mcpgate.auth`).
    pub auth: Auth,
    /// Where the audit trail goes (`mcpgate.audit`); `None`: no trail.
    pub audit: Option<crate::policy::audit::Settings>,
}

/// Who may call the gateway: `mode` `"none"` (anyone who reaches the listener) is for loopback; a
/// listener beyond it without authentication is refused unless `allowUnauthenticated` says so.
/// `"jwt"`: bearer tokens from an issuer (`jwt`). `"oauth"`: tokens the gateway issues itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Auth {
    pub allow_unauthenticated: bool,
    pub jwt: Option<crate::authn::Settings>,
    /// `"oauth"`: the gateway is the authorization server, in front of an identity provider.
    pub oauth: Option<crate::authz::Settings>,
    /// Who may use what (`usersFile`): read at start and whenever it changes.
    pub users_file: Option<PathBuf>,
    /// What each role grants (`roles`).
    pub roles: crate::policy::Roles,
}

impl Auth {
    /// Whether callers are authenticated (a mode other than `none`).
    pub fn authenticates(&self) -> bool {
        self.jwt.is_some() || self.oauth.is_some()
    }
}

pub use crate::secret::Secret;

/// When the gateway counts as ready (`/readyz` 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// At least one server is ready: the gateway serves something (a broken server does not take
    /// the others out of a load balancer's rotation).
    Any,
    /// Every enabled server is ready.
    All,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub name: String,
    pub enabled: bool,
    pub transport: Transport,
    pub timeout: Duration,
    /// Prepended to its tools' and prompts' names; `None`: the default (`<name><sep>`, or none
    /// when this is the only server).
    pub prefix: Option<String>,
    pub tools: ToolFilter,
    /// Sends the caller's own bearer token to this server (it validates users itself).
    pub forward_client_token: bool,
    pub credential: Option<Credential>,
    pub restart: Restart,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
        /// One child per client session instead of one shared child.
        stateful: bool,
    },
    /// Streamable HTTP, legacy HTTP+SSE, or either (detected as the spec says).
    Remote { url: Uri, kind: RemoteKind, headers: Vec<(HeaderName, HeaderValue)> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    Auto,
    StreamableHttp,
    Sse,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolFilter {
    /// Only these (empty: all).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl Server {
    /// Whether the server is sent each caller's own token, or one made from it: then nothing
    /// is asked of it on everyone's behalf, and its listings are not shared between callers.
    pub fn per_caller_token(&self) -> bool {
        self.forward_client_token
            || matches!(&self.credential, Some(Credential::TokenExchange(_)))
            || matches!(&self.credential, Some(Credential::OAuth(o)) if o.per_user)
    }
}

impl ToolFilter {
    pub fn allows(&self, tool: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|t| t == tool)) && !self.exclude.iter().any(|t| t == tool)
    }

    /// Whether every tool is allowed (nothing to check on a call).
    pub fn is_open(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

/// Where a server's bearer token comes from (the `connect`/`stdio` sources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Env(String),
    File(PathBuf),
    Command(String),
    OAuth(OAuth),
    /// Each caller's own token exchanged for one this server takes (RFC 8693): sent to the
    /// issuer's token endpoint by the gateway, a confidential client of it.
    TokenExchange(crate::oauth_client::exchange::Settings),
}

/// OAuth / OpenID Connect for one server: client credentials for machines, or the tokens a
/// `mcpgate login` stored (a gateway opens no browser: the sign-in URL goes to its log).
#[derive(Clone, PartialEq, Eq)]
pub struct OAuth {
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Option<String>,
    pub resource: Option<String>,
    pub client_credentials: bool,
    /// Each user signs in to the server themselves, in their browser through the gateway
    /// (`perUser`): their own token goes with their requests, never anyone else's.
    pub per_user: bool,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("client_credentials", &self.client_credentials)
            .field("per_user", &self.per_user)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    /// Restarts in a row before giving up (the server then stays down: degraded).
    pub max_attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Restart {
    fn default() -> Self {
        Restart { max_attempts: 10, initial: Duration::from_secs(1), max: Duration::from_secs(30) }
    }
}

/// Every problem of a file, ready to print one per line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.render())]
pub struct Invalid {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl Invalid {
    /// A file that could not be read at all.
    pub fn unreadable(path: &Path, why: String) -> Invalid {
        Invalid {
            file: path.display().to_string(),
            problems: vec![Problem { path: String::new(), pos: json::Pos { line: 0, col: 0 }, message: why }],
        }
    }

    fn render(&self) -> String {
        let n = self.problems.len();
        let mut s = format!("{} has {n} problem{}:", self.file, if n == 1 { "" } else { "s" });
        for p in &self.problems {
            s.push_str(&format!("\n  {}:{p}", self.file));
        }
        s
    }
}

/// Reads and validates a configuration file, with the process environment for `${VAR}`.
pub fn load(path: &Path) -> Result<Config, Invalid> {
    let text = std::fs::read_to_string(path).map_err(|e| Invalid::unreadable(path, format!("cannot be read: {e}")))?;
    let cfg = parse(&text, &|k| std::env::var(k).ok())
        .map_err(|problems| Invalid { file: path.display().to_string(), problems })?;
    if !cfg.ignored.is_empty() {
        tracing::debug!("{}: other clients' keys, ignored: {}", path.display(), cfg.ignored.join(", "));
    }
    Ok(cfg)
}

/// Validates a configuration text (pure: the environment comes in as `env`).
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<Problem>> {
    let root = json::parse(text).map_err(|e| vec![Problem { path: String::new(), pos: e.pos, message: e.message }])?;
    validate::config(&root, env)
}

/// `250ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 30s, 5m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
