//! The command line. Parsing only: each subcommand turns into the options of its mode.

use crate::config::parse_duration;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use http::HeaderMap;

use crate::credentials::{CommandSpec, Source};

#[derive(Debug, Parser)]
#[command(
    name = "mcpgate",
    version,
    about = "One binary between MCP clients and MCP servers that owns authentication on both sides"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "MCPGATE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// More detail: -v debug, -vv trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Same as -v.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Errors only.
    #[arg(short, long, global = true, conflicts_with_all = ["verbose", "debug"])]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
// Parsed once at start: the size of a variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// A local proxy in front of one MCP server that fetches, refreshes and injects its credential.
    Connect(ConnectArgs),
    /// A stdio bridge for clients that launch a command: JSON-RPC lines on stdin/stdout, relayed to
    /// a remote MCP server with its credential.
    Stdio(StdioArgs),
    /// Sign in to an MCP server ahead of time; the tokens are stored for `stdio` and `connect`.
    Login(LoginArgs),
    /// Remove stored credentials: of one server, or all of them.
    Logout(LogoutArgs),
    /// What is stored, for which server, until when (never the secret values).
    Status(StatusArgs),
    /// One endpoint for many MCP servers (stdio, Streamable HTTP, legacy SSE), from a config file.
    Serve(ServeArgs),
    /// Validate a `serve` configuration file and report every problem with its line.
    Check(CheckArgs),
    /// Point an MCP client (its config file) at a running mcpgate: an entry with the URL and no
    /// token; the rest of the file kept as it was.
    Install(InstallArgs),
}

/// How to reach the upstream and what credential to present: the same for every mode.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("credential").args(["bearer_env", "bearer_file", "token_command"])))]
pub struct UpstreamArgs {
    /// Bearer token from this environment variable (read once at start).
    #[arg(long, value_name = "VAR")]
    pub bearer_env: Option<String>,
    /// Bearer token from this file, re-read whenever it changes.
    #[arg(long, value_name = "PATH")]
    pub bearer_file: Option<PathBuf>,
    /// Bearer token printed by this shell command (bare, or JSON with accessToken/access_token and
    /// expires_in/expires_at/expiresOn); refreshed ahead of expiry.
    #[arg(long, value_name = "CMD")]
    pub token_command: Option<String>,
    /// Time limit for one run of --token-command.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub token_command_timeout: Duration,
    /// A header sent upstream on every request, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,
    /// How long to wait for the upstream: for response headers, and for the next event of a
    /// response stream.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long to wait for a TCP/TLS connection to the upstream.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// The upstream's transport.
    #[arg(long, value_enum, default_value_t = crate::connect::Transport::Auto)]
    pub transport: crate::connect::Transport,
    #[command(flatten)]
    pub oauth: OAuthArgs,
}

/// Signing in to the upstream with OAuth 2.1 / OpenID Connect.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sign-in (OAuth / OpenID Connect)")]
pub struct OAuthArgs {
    /// Sign in when the server asks for it (MCP authorization: discovery, registration, browser
    /// login, stored and refreshed tokens). The default for `stdio` and `login`.
    #[arg(long)]
    pub oauth: bool,
    /// Never sign in: an upstream's 401 reaches the client.
    #[arg(long, conflicts_with = "oauth")]
    pub no_oauth: bool,
    /// Plain OpenID Connect: sign in at this issuer, without discovery from the server.
    #[arg(long, value_name = "URL", env = "OIDC_ISSUER_URL")]
    pub issuer: Option<String>,
    /// A client registered at the authorization server (else: a metadata document URL, or
    /// dynamic registration).
    #[arg(long, value_name = "ID", env = "OIDC_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The client's secret (prefer the environment variable or --client-secret-file: arguments
    /// are visible to other users of the machine).
    #[arg(long, value_name = "SECRET", env = "OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Read the client's secret from this file.
    #[arg(long, value_name = "PATH", conflicts_with = "client_secret")]
    pub client_secret_file: Option<PathBuf>,
    /// How the client authenticates at the token endpoint (default: what the registration or
    /// the server's metadata says).
    #[arg(long, value_enum, value_name = "METHOD")]
    pub token_auth_method: Option<crate::oauth_client::token::AuthMethod>,
    /// A Client ID Metadata Document URL, used as the client id where the server supports it.
    #[arg(long, value_name = "URL")]
    pub client_metadata_url: Option<String>,
    /// The client's private key (PEM, PKCS#8) for private_key_jwt.
    #[arg(long, value_name = "PATH")]
    pub private_key_file: Option<PathBuf>,
    /// The algorithm of --private-key-file (RS256, ES256, ES384, EdDSA; default: the key's).
    #[arg(long, value_name = "ALG")]
    pub signing_alg: Option<String>,
    /// Scopes to ask for (space- or comma-separated; default: what the server asks for).
    #[arg(long, value_name = "SCOPES", env = "OIDC_SCOPES")]
    pub scopes: Option<String>,
    /// The loopback redirect URI (default: http://127.0.0.1:<free port>/callback).
    #[arg(long, value_name = "URL", env = "OIDC_REDIRECT_URL")]
    pub redirect_url: Option<String>,
    /// The resource indicator to ask tokens for (default: the server's; `none`: send none).
    #[arg(long, value_name = "URI")]
    pub resource: Option<String>,
    /// How tokens are obtained.
    #[arg(long, value_enum, default_value_t = crate::oauth_client::GrantKind::AuthorizationCode)]
    pub grant: crate::oauth_client::GrantKind,
    /// Cross-App Access: the identity provider's token endpoint (RFC 8693 token exchange).
    #[arg(long, value_name = "URL")]
    pub idp_token_endpoint: Option<String>,
    /// Cross-App Access: the client id at the identity provider.
    #[arg(long, value_name = "ID")]
    pub idp_client_id: Option<String>,
    /// Cross-App Access: a file holding the user's ID token from the identity provider.
    #[arg(long, value_name = "PATH")]
    pub idp_id_token_file: Option<PathBuf>,
    /// Workload identity: a file holding the workload's JWT (e.g. a projected service account
    /// token), sent as the JWT-bearer grant; read again for each token.
    #[arg(long, value_name = "PATH")]
    pub workload_token_file: Option<PathBuf>,
    /// Require DPoP-bound tokens (RFC 9449): every token request carries a proof, and a token
    /// issued unbound (Bearer) is refused. Default: DPoP where both servers take it (the MCP
    /// server's challenge or metadata asks for DPoP, and the authorization server lists ES256 in
    /// dpop_signing_alg_values_supported or says nothing).
    #[arg(long)]
    pub dpop: bool,
    /// Never ask for DPoP-bound tokens, even where the servers advertise them.
    #[arg(long, conflicts_with = "dpop")]
    pub no_dpop: bool,
    /// The command that opens the browser (the URL is appended); default $BROWSER, else
    /// xdg-open/open.
    #[arg(long, value_name = "CMD", env = "MCPGATE_BROWSER")]
    pub browser: Option<String>,
    /// Do not open a browser; only print the sign-in URL.
    #[arg(long)]
    pub no_browser: bool,
    /// How long to wait for the user to sign in.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub login_timeout: Duration,
    /// Where credentials are stored (default: $XDG_CONFIG_HOME/mcpgate or ~/.config/mcpgate).
    #[arg(long, value_name = "DIR", env = "MCPGATE_STORE_DIR")]
    pub store_dir: Option<PathBuf>,
}

impl OAuthArgs {
    fn none() -> OAuthArgs {
        OAuthArgs {
            oauth: false,
            no_oauth: true,
            issuer: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            token_auth_method: None,
            client_metadata_url: None,
            private_key_file: None,
            signing_alg: None,
            scopes: None,
            redirect_url: None,
            resource: None,
            grant: crate::oauth_client::GrantKind::AuthorizationCode,
            idp_token_endpoint: None,
            idp_client_id: None,
            idp_id_token_file: None,
            workload_token_file: None,
            dpop: false,
            no_dpop: false,
            browser: None,
            no_browser: false,
            login_timeout: Duration::from_secs(300),
            store_dir: None,
        }
    }

    /// Whether any sign-in setting was given.
    fn requested(&self) -> bool {
        self.oauth || self.issuer.is_some() || self.client_id.is_some() || self.grant.unattended() || self.dpop
    }

    fn into_config(self, upstream: &UpstreamArgs, server: &http::Uri) -> Result<crate::oauth_client::Config, String> {
        let client_secret = match &self.client_secret_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("--client-secret-file {}: {e}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => self.client_secret,
        };
        // Every URL a flag gives is checked here, before anything starts, naming the flag.
        for (flag, url) in [
            ("--issuer", &self.issuer),
            ("--client-metadata-url", &self.client_metadata_url),
            ("--idp-token-endpoint", &self.idp_token_endpoint),
        ] {
            if let Some(url) = url {
                crate::url::parse(url).map_err(|e| format!("{flag}: {e}"))?;
            }
        }
        if let Some(resource) = self.resource.as_deref().filter(|r| *r != "none") {
            crate::url::check_identifier(resource).map_err(|e| format!("--resource: {e}"))?;
        }
        if let Some(url) = &self.redirect_url {
            crate::oauth_client::callback::parse_redirect(url).map_err(|e| format!("--redirect-url: {e}"))?;
        }
        if self.grant.unattended() && self.client_id.is_none() {
            return Err(
                "--grant client-credentials, cross-app-access and workload-identity need --client-id (or OIDC_CLIENT_ID)"
                    .into(),
            );
        }
        if self.grant == crate::oauth_client::GrantKind::WorkloadIdentity && self.workload_token_file.is_none() {
            return Err("--grant workload-identity needs --workload-token-file".into());
        }
        if self.grant == crate::oauth_client::GrantKind::CrossAppAccess
            && (self.idp_token_endpoint.is_none() || self.idp_id_token_file.is_none())
        {
            return Err("--grant cross-app-access needs --idp-token-endpoint and --idp-id-token-file".into());
        }
        let browser = match (self.no_browser, self.browser) {
            (true, _) => crate::oauth_client::Browser::Off,
            (false, Some(cmd)) if !cmd.trim().is_empty() => crate::oauth_client::Browser::Command(cmd),
            _ => crate::oauth_client::Browser::System,
        };
        let resource = self.resource.map(|r| if r == "none" { String::new() } else { r });
        Ok(crate::oauth_client::Config {
            server: server.clone(),
            issuer: self.issuer,
            client_id: self.client_id,
            client_secret,
            auth_method: self.token_auth_method,
            client_metadata_url: self.client_metadata_url,
            private_key: self.private_key_file,
            signing_alg: self.signing_alg,
            scopes: self.scopes.map(|s| s.replace(',', " ").split_whitespace().collect::<Vec<_>>().join(" ")),
            redirect_url: self.redirect_url,
            resource,
            grant: self.grant,
            idp: crate::oauth_client::IdentityProvider {
                token_endpoint: self.idp_token_endpoint,
                client_id: self.idp_client_id,
                id_token_file: self.idp_id_token_file,
            },
            workload_token_file: self.workload_token_file,
            browser,
            login_timeout: self.login_timeout,
            store_dir: self.store_dir,
            timeout: upstream.timeout.min(Duration::from_secs(30)),
            connect_timeout: upstream.connect_timeout,
            dpop: match (self.dpop, self.no_dpop) {
                (true, _) => crate::oauth_client::dpop::Mode::Require,
                (false, true) => crate::oauth_client::dpop::Mode::Off,
                (false, false) => crate::oauth_client::dpop::Mode::Auto,
            },
        })
    }
}

impl UpstreamArgs {
    /// `oauth_by_default`: sign in when no other credential is given (`stdio`, `login`);
    /// otherwise only when a sign-in setting asks for it (`connect`).
    pub fn into_options(
        mut self,
        url: &str,
        oauth_by_default: bool,
    ) -> Result<crate::connect::UpstreamOptions, String> {
        let url = crate::url::parse(url).map_err(|e| format!("URL: {e}"))?;
        let mut headers = HeaderMap::new();
        for (i, raw) in self.headers.iter().enumerate() {
            let (k, v) = crate::upstream::parse_header(raw).map_err(|e| format!("--header #{}: {e}", i + 1))?;
            headers.append(k, v);
        }
        let oauth = std::mem::replace(&mut self.oauth, OAuthArgs::none());
        let credential = if let Some(var) = self.bearer_env.clone() {
            Some(Source::Env(var))
        } else if let Some(path) = self.bearer_file.clone() {
            Some(Source::File(path))
        } else if let Some(command) = self.token_command.clone() {
            Some(Source::Command(CommandSpec { command, timeout: self.token_command_timeout }))
        } else if !oauth.no_oauth && (oauth.requested() || oauth_by_default) {
            Some(Source::OAuth(Box::new(oauth.into_config(&self, &url)?)))
        } else {
            None
        };
        Ok(crate::connect::UpstreamOptions {
            url,
            credential,
            headers,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            transport: self.transport,
        })
    }
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The upstream MCP server's URL (Streamable HTTP endpoint).
    pub url: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8001")]
    pub listen: SocketAddr,
    /// Path of the MCP endpoint on the listener.
    #[arg(long, default_value = "/mcp")]
    pub path: String,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// Largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body: usize,
    /// A Host name accepted besides loopback names (repeatable; needed when listening beyond loopback).
    #[arg(long, value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// A browser Origin accepted besides loopback origins, e.g. https://app.example (repeatable).
    #[arg(long, value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// Sessions idle this long are ended.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// Open sessions at most; a new one over the limit takes the place of the idle session used
    /// longest ago (503 when none is idle).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sessions: u64,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// How long a connection may wait for its next request (and a new one for its first).
    #[arg(long, value_name = "DURATION", default_value = "75s", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,
    /// How long a request head may take to arrive once begun.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_positive_duration)]
    pub head_timeout: Duration,
    /// How long a request body may pause between reads (it must also average 1 KiB/s).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    pub body_timeout: Duration,
    /// How long the client may take to read what is written to it.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    pub write_timeout: Duration,
    /// Client connections open at once (the longest-idle one is closed to make room).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Event loops serving client connections (default: one per core, nginx's `worker_processes auto`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// An identity served at /agents/NAME/mcp with a credential of its own (repeatable): `NAME`
    /// (its token set through the admin API), `NAME=env:VAR`, `NAME=file:PATH`,
    /// `NAME=command:CMD`, or `NAME=oauth` (signed in as the sign-in flags say, tokens of its own).
    #[arg(long, value_name = "NAME[=SOURCE]")]
    pub identity: Vec<String>,
    /// Identities from a file: `{"NAME": {"bearerFile": PATH, "listen": "127.0.0.1:PORT"}, …}`
    /// (`bearerEnv`, `bearerFile` or `tokenCommand`, or none: set through the admin API;
    /// `listen`: a port of its own, serving the identity at --path).
    #[arg(long, value_name = "FILE")]
    pub identities: Option<PathBuf>,
    /// The admin API's Unix socket (0600): identities listed, added, given tokens, removed.
    /// Default with identities: $XDG_RUNTIME_DIR/mcpgate/connect-PORT.sock.
    #[arg(long, value_name = "PATH")]
    pub admin_socket: Option<PathBuf>,
    /// The admin API over HTTP on this loopback address instead (each request carries the secret
    /// written to --admin-secret-file).
    #[arg(long, value_name = "ADDR", requires = "admin_secret_file")]
    pub admin_listen: Option<SocketAddr>,
    /// Where --admin-listen's random secret is written (0600).
    #[arg(long, value_name = "PATH", requires = "admin_listen")]
    pub admin_secret_file: Option<PathBuf>,
}

/// `--identity NAME=oauth`: signed in as the sign-in flags say, with tokens of its own (a store
/// of its own beside the user's: `identities/NAME`).
fn oauth_identity(
    name: &str,
    upstream: &crate::connect::UpstreamOptions,
) -> Result<crate::connect::identities::Spec, String> {
    let Some(crate::credentials::Source::OAuth(cfg)) = &upstream.credential else {
        return Err(format!("--identity {name}=oauth: give the sign-in flags (--client-id, --grant, …) too"));
    };
    if !crate::connect::identities::valid(name) {
        return Err(format!("--identity {name:?}: a name is 1-64 of A-Z a-z 0-9 - _ . (not first)"));
    }
    let mut cfg = cfg.clone();
    let base =
        cfg.store_dir.clone().or_else(crate::store::Store::default_dir).ok_or("no credential store directory")?;
    cfg.store_dir = Some(base.join("identities").join(name));
    Ok(crate::connect::identities::Spec {
        name: name.to_owned(),
        source: crate::credentials::Source::OAuth(cfg),
        listen: None,
    })
}

/// `--identity NAME[=env:VAR|file:PATH|command:CMD]`.
fn identity(spec: &str) -> Result<crate::connect::identities::Spec, String> {
    use crate::credentials::{CommandSpec, Source};
    let (name, source) = match spec.split_once('=') {
        None => (spec, Source::Set),
        Some((name, s)) => {
            let source = match s.split_once(':') {
                Some(("env", var)) if !var.is_empty() => Source::Env(var.to_owned()),
                Some(("file", path)) if !path.is_empty() => Source::File(PathBuf::from(path)),
                Some(("command", cmd)) if !cmd.is_empty() => {
                    Source::Command(CommandSpec { command: cmd.to_owned(), timeout: Duration::from_secs(30) })
                }
                _ => return Err(format!("--identity {name}: the source is env:VAR, file:PATH or command:CMD")),
            };
            (name, source)
        }
    };
    if !crate::connect::identities::valid(name) {
        return Err(format!("--identity {name:?}: a name is 1-64 of A-Z a-z 0-9 - _ . (not first)"));
    }
    Ok(crate::connect::identities::Spec { name: name.to_owned(), source, listen: None })
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() { Err("must be longer than zero".into()) } else { Ok(d) }
}

impl ConnectArgs {
    pub fn into_options(self) -> Result<crate::connect::Options, String> {
        if !self.path.starts_with('/') {
            return Err(format!("--path {:?} must start with /", self.path));
        }
        let upstream = self.upstream.into_options(&self.url, false)?;
        let mut identities = Vec::new();
        for spec in &self.identity {
            identities.push(match spec.strip_suffix("=oauth") {
                Some(name) => oauth_identity(name, &upstream)?,
                None => identity(spec)?,
            });
        }
        if let Some(file) = &self.identities {
            identities.extend(crate::connect::identities::read_file(file)?);
        }
        Ok(crate::connect::Options {
            translation: Some(crate::serve::translator::translation()),
            identities,
            admin_socket: self.admin_socket,
            admin_http: self.admin_listen.zip(self.admin_secret_file),
            upstream,
            listen: self.listen,
            path: self.path,
            max_body: self.max_body,
            allow_hosts: self.allow_host,
            allow_origins: self.allow_origin,
            session_ttl: self.session_ttl,
            max_sessions: usize::try_from(self.max_sessions).unwrap_or(usize::MAX),
            // One user on loopback: no limit per client address; the rest as nginx has it.
            limits: crate::http::limits::Limits {
                idle_timeout: self.idle_timeout,
                head_timeout: self.head_timeout,
                body_timeout: self.body_timeout,
                write_timeout: self.write_timeout,
                max_connections: self.max_connections as usize,
                max_connections_per_client: 0,
                max_body: self.max_body,
                shutdown_grace: self.shutdown_grace,
                ..Default::default()
            },
            threads: self.threads.map(usize::from),
        })
    }
}

#[derive(Debug, Args)]
pub struct StdioArgs {
    /// The remote MCP server's URL (Streamable HTTP or HTTP+SSE).
    #[arg(env = "MCP_BACKEND_URL")]
    pub url: String,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// Errors only on stderr (same as --quiet).
    #[arg(long)]
    pub silent: bool,
    /// Do not log the start-up line.
    #[arg(long)]
    pub no_banner: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The MCP server's URL.
    #[arg(env = "MCP_BACKEND_URL")]
    pub url: String,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The MCP server whose credentials to remove.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub url: Option<String>,
    /// Remove every stored credential and client registration.
    #[arg(long)]
    pub all: bool,
    /// Where credentials are stored.
    #[arg(long, value_name = "DIR", env = "MCPGATE_STORE_DIR")]
    pub store_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (the `mcpServers` shape of Claude Desktop, Claude Code and Cursor).
    #[arg(long, short = 'c', value_name = "FILE", env = "MCPGATE_CONFIG")]
    pub config: PathBuf,
    /// Address to listen on (default: the file's `mcpgate.listen`, else 127.0.0.1:8090).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration file (the `mcpServers` shape of Claude Desktop, Claude Code and Cursor).
    #[arg(long, short = 'c', value_name = "FILE", env = "MCPGATE_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The client whose configuration to write.
    #[arg(value_enum)]
    pub client: crate::install::Client,
    /// The running mcpgate's MCP endpoint (`connect`'s, an identity's, or `serve`'s).
    #[arg(long, default_value = "http://127.0.0.1:8001/mcp")]
    pub url: String,
    /// The entry's name among the client's servers.
    #[arg(long, default_value = "mcpgate")]
    pub name: String,
    /// Print a file of the client's format with the project's servers and the entry, as
    /// `--output` would write it (for a wrapper to pass on), instead of writing anything.
    #[arg(long, conflicts_with = "output")]
    pub print: bool,
    /// Write this file instead of the client's own (for a wrapper's `--mcp-config`): a new one
    /// carries the project's servers too.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The project whose servers an `--output` file carries (its `.mcp.json` and the like).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub project: PathBuf,
    /// Take the entry out again.
    #[arg(long)]
    pub remove: bool,
    /// Replace (or, with --remove, take out) an entry of that name that is not mcpgate's.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where credentials are stored.
    #[arg(long, value_name = "DIR", env = "MCPGATE_STORE_DIR")]
    pub store_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_flags_exclude_each_other() {
        let r = Cli::try_parse_from(["mcpgate", "connect", "http://x/mcp", "--bearer-env", "A", "--bearer-file", "f"]);
        assert!(r.is_err());
    }
}
