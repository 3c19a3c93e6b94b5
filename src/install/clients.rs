//! Where each MCP client keeps its servers, in which dialect, and the entry that points it at a
//! running mcpgate (docs/clients.md cites each client's documentation).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The clients `mcpgate install` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    ClaudeCode,
    ClaudeDesktop,
    Cursor,
    Vscode,
    Codex,
    Gemini,
}

/// How a client's file holds its servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// JSON (comments allowed where the client allows them), servers under this key.
    Json(&'static str),
    /// TOML, a table `[mcp_servers.NAME]` per server (Codex).
    Toml,
}

/// Where the user's files are: the home directory, and on Windows `%APPDATA%`.
pub struct Places {
    pub home: PathBuf,
    pub os: Os,
    pub appdata: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME` (Linux; default `~/.config`).
    pub xdg_config: Option<PathBuf>,
    /// `$CODEX_HOME` (default `~/.codex`).
    pub codex_home: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    MacOs,
    Windows,
}

impl Client {
    pub fn dialect(self) -> Dialect {
        match self {
            Client::Vscode => Dialect::Json("servers"),
            Client::Codex => Dialect::Toml,
            _ => Dialect::Json("mcpServers"),
        }
    }

    /// The user's own file.
    pub fn user_file(self, p: &Places) -> PathBuf {
        let config = || match p.os {
            Os::Linux => p.xdg_config.clone().unwrap_or_else(|| p.home.join(".config")),
            Os::MacOs => p.home.join("Library/Application Support"),
            Os::Windows => p.appdata.clone().unwrap_or_else(|| p.home.join("AppData/Roaming")),
        };
        match self {
            Client::ClaudeCode => p.home.join(".claude.json"),
            Client::ClaudeDesktop => config().join("Claude/claude_desktop_config.json"),
            Client::Cursor => p.home.join(".cursor/mcp.json"),
            Client::Vscode => config().join("Code/User/mcp.json"),
            Client::Codex => p.codex_home.clone().unwrap_or_else(|| p.home.join(".codex")).join("config.toml"),
            Client::Gemini => p.home.join(".gemini/settings.json"),
        }
    }

    /// The project's own file in `dir`, whose servers an `--output` file carries too (Claude
    /// Desktop has none).
    pub fn project_file(self, dir: &Path) -> Option<PathBuf> {
        Some(dir.join(match self {
            Client::ClaudeCode => ".mcp.json",
            Client::ClaudeDesktop => return None,
            Client::Cursor => ".cursor/mcp.json",
            Client::Vscode => ".vscode/mcp.json",
            Client::Codex => ".codex/config.toml",
            Client::Gemini => ".gemini/settings.json",
        }))
    }

    /// The entry that points the client at `url` — never a token: the client's credential is
    /// mcpgate's to hold. Claude Desktop launches commands only: `mcpgate stdio URL` (by
    /// `program`, this mcpgate's path).
    pub fn entry(self, url: &str, program: &str) -> Value {
        match self {
            Client::ClaudeCode | Client::Vscode => json!({"type": "http", "url": url}),
            Client::ClaudeDesktop => json!({"command": program, "args": ["stdio", url]}),
            Client::Cursor => json!({"url": url}),
            // `httpUrl`: Streamable HTTP in every Gemini CLI version (a bare `url` was SSE before
            // `type` came).
            Client::Gemini => json!({"httpUrl": url}),
            Client::Codex => json!({"url": url}),
        }
    }
}
