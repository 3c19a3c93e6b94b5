//! The command line. Parsing only: each subcommand turns into the options of its mode.

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
pub enum Command {
    /// A local proxy in front of one MCP server that fetches, refreshes and injects its credential.
    Connect(ConnectArgs),
    /// A stdio bridge for clients that launch a command: JSON-RPC lines on stdin/stdout, relayed to
    /// a remote MCP server with its credential.
    Stdio(StdioArgs),
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
}

impl UpstreamArgs {
    pub fn into_options(self, url: &str) -> Result<crate::connect::UpstreamOptions, String> {
        let url = crate::upstream::parse_url(url)?;
        let mut headers = HeaderMap::new();
        for raw in &self.headers {
            let (k, v) = crate::upstream::parse_header(raw)?;
            headers.append(k, v);
        }
        let credential = if let Some(var) = self.bearer_env {
            Some(Source::Env(var))
        } else if let Some(path) = self.bearer_file {
            Some(Source::File(path))
        } else {
            self.token_command
                .map(|command| Source::Command(CommandSpec { command, timeout: self.token_command_timeout }))
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
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl ConnectArgs {
    pub fn into_options(self) -> Result<crate::connect::Options, String> {
        if !self.path.starts_with('/') {
            return Err(format!("--path {:?} must start with /", self.path));
        }
        Ok(crate::connect::Options {
            upstream: self.upstream.into_options(&self.url)?,
            listen: self.listen,
            path: self.path,
            max_body: self.max_body,
            allow_hosts: self.allow_host,
            allow_origins: self.allow_origin,
            session_ttl: self.session_ttl,
            shutdown_grace: self.shutdown_grace,
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
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn credential_flags_exclude_each_other() {
        let r = Cli::try_parse_from(["mcpgate", "connect", "http://x/mcp", "--bearer-env", "A", "--bearer-file", "f"]);
        assert!(r.is_err());
    }
}
