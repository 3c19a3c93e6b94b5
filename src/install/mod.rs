//! `mcpgate install CLIENT`: the client's MCP configuration made to point at a running mcpgate —
//! an entry with its URL and no token (the credential is mcpgate's to hold and rotate), so the
//! client's file never goes stale when a token changes. Written into the client's own file
//! (`clients.rs` knows where, and in which dialect), or printed, or written to a file of its own
//! for a wrapper's `--mcp-config` (then carrying the project's servers too). The rest of an
//! existing file stays byte for byte (`jsonc.rs`, `toml.rs`); the write is atomic, with a backup
//! (`write.rs`); installing twice changes nothing; `--remove` takes the entry out again.

pub mod clients;
mod jsonc;
mod toml;
mod write;

use std::path::PathBuf;

pub use clients::{Client, Dialect, Os, Places};

/// What to install, where.
pub struct Options {
    pub client: Client,
    /// The running mcpgate's MCP endpoint.
    pub url: String,
    /// The entry's name among the client's servers.
    pub name: String,
    /// Print a file of the client's format, as `output` would start it, instead of writing one.
    pub print: bool,
    /// Write to this file instead of the client's own (a wrapper's `--mcp-config`); a new one
    /// starts from the project's file, so the project's servers come along.
    pub output: Option<PathBuf>,
    /// Where the project's file is looked for.
    pub project: PathBuf,
    /// Take the entry out instead.
    pub remove: bool,
}

/// What `run` did, for the user.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    Printed(String),
    Written { file: PathBuf, backup: Option<PathBuf> },
    Unchanged(PathBuf),
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Printed(text) => f.write_str(text),
            Done::Written { file, backup: Some(b) } => {
                write!(f, "wrote {} (the old one is {})", file.display(), b.display())
            }
            Done::Written { file, backup: None } => write!(f, "wrote {}", file.display()),
            Done::Unchanged(file) => write!(f, "{} is up to date", file.display()),
        }
    }
}

/// Installs (or removes) the entry; `program` is this mcpgate's path (what Claude Desktop runs).
pub fn run(opts: &Options, places: &Places, program: &str) -> Result<Done, String> {
    check_url(&opts.url)?;
    if opts.name.is_empty() || !crate::config::valid_name(&opts.name) {
        return Err(format!("--name {:?}: use 1-128 of A-Z a-z 0-9 _ - . /", opts.name));
    }
    let file = opts.output.clone().unwrap_or_else(|| opts.client.user_file(places));
    let read = |p: &std::path::Path| match std::fs::read_to_string(p) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", p.display())),
    };
    // A file for a wrapper (printed, or `output`) stands alone; the client's own is edited.
    let own = !opts.print && opts.output.is_none();
    let old = if opts.print { None } else { read(&file)? };
    let base = match &old {
        Some(text) => text.clone(),
        // A new file for a wrapper: the project's servers, as the project's file has them.
        None if !own => match opts.client.project_file(&opts.project) {
            Some(p) => read(&p)?.unwrap_or_default(),
            None => String::new(),
        },
        None => String::new(),
    };
    let entry = opts.client.entry(&opts.url, program);
    let edited = match (opts.client.dialect(), opts.remove) {
        (Dialect::Json(key), false) => Some(jsonc::upsert(&base, key, &opts.name, &entry)),
        (Dialect::Json(key), true) => jsonc::remove(&base, key, &opts.name).transpose(),
        (Dialect::Toml, false) => Some(toml::upsert(&base, &opts.name, &entry)),
        (Dialect::Toml, true) => toml::remove(&base, &opts.name).transpose(),
    };
    let new = match edited {
        Some(r) => r.map_err(|e| format!("{}: {e}", file.display()))?,
        None => base,
    };
    if opts.print {
        return Ok(Done::Printed(new));
    }
    if old.as_deref() == Some(new.as_str()) || (old.is_none() && new.is_empty()) {
        return Ok(Done::Unchanged(file));
    }
    let backup = write::replace(&file, &new)?;
    Ok(Done::Written { file, backup })
}

/// The URL goes into a file others read: http(s), with a host, and nothing that could be a
/// credential (user info, a query).
fn check_url(url: &str) -> Result<(), String> {
    let uri = crate::url::parse(url).map_err(|e| format!("--url: {e}"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) || uri.query().is_some() {
        return Err("--url: a client's file must hold no credential: give the URL without user info or query".into());
    }
    Ok(())
}

impl Places {
    /// This machine's: `$HOME` (`%USERPROFILE%`), `%APPDATA%`, `$XDG_CONFIG_HOME`, `$CODEX_HOME`.
    pub fn from_env() -> Result<Places, String> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let os = if cfg!(target_os = "macos") {
            Os::MacOs
        } else if cfg!(windows) {
            Os::Windows
        } else {
            Os::Linux
        };
        let home = var("HOME").or_else(|| var("USERPROFILE")).ok_or("HOME is not set")?;
        Ok(Places {
            home,
            os,
            appdata: var("APPDATA"),
            xdg_config: var("XDG_CONFIG_HOME"),
            codex_home: var("CODEX_HOME"),
        })
    }
}
