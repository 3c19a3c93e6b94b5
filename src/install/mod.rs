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
    /// Replace (or remove) an entry of that name that is not mcpgate's.
    pub force: bool,
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
    // A client may rewrite its file meanwhile (Claude Code does, often): what it wrote between our
    // read and our rename is never lost — the edit starts again from its version.
    for _ in 0..3 {
        let old = if opts.print { None } else { read(&file)? };
        let Some(new) = edit(opts, &file, old.as_deref(), program)? else { return Ok(Done::Unchanged(file)) };
        if opts.print {
            return Ok(Done::Printed(new));
        }
        match write::replace(&file, &new, old.as_deref())? {
            write::Outcome::Written(backup) => return Ok(Done::Written { file, backup }),
            write::Outcome::Changed => continue,
        }
    }
    Err(format!("{} keeps changing under us; try again", file.display()))
}

fn read(p: &std::path::Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(p) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", p.display())),
    }
}

/// `file`'s new text, from `old` (`None`: there is none); `None` when nothing changes.
fn edit(opts: &Options, file: &std::path::Path, old: Option<&str>, program: &str) -> Result<Option<String>, String> {
    let base = match old {
        Some(text) => text.to_owned(),
        // Nothing to take out of a file that is not there.
        None if opts.remove => return Ok(None),
        // A new file for a wrapper (printed, or `output`): the project's servers, as the
        // project's file has them.
        None if opts.print || opts.output.is_some() => match opts.client.project_file(&opts.project) {
            Some(p) => read(&p)?.unwrap_or_default(),
            None => String::new(),
        },
        None => String::new(),
    };
    // Kept as found: a byte-order mark (Notepad's), and CRLF line ends.
    let (bom, body) = match base.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", base.as_str()),
    };
    let entry = opts.client.entry(&opts.url, program);
    let at = |e: String| match old {
        Some(_) => format!("{}: {e}", file.display()),
        None => format!("the project's file: {e}"),
    };
    let edited = match (opts.client.dialect(), opts.remove) {
        (Dialect::Json(key), false) => Some(jsonc::upsert(body, key, &opts.name, &entry, opts.force)),
        (Dialect::Json(key), true) => jsonc::remove(body, key, &opts.name, &entry, opts.force).transpose(),
        (Dialect::Toml, false) => Some(toml::upsert(body, &opts.name, &entry, opts.force)),
        (Dialect::Toml, true) => toml::remove(body, &opts.name, &entry, opts.force).transpose(),
    };
    let Some(edited) = edited else { return Ok(None) };
    let mut new = edited.map_err(at)?;
    if body.contains("\r\n") {
        new = new.replace("\r\n", "\n").replace('\n', "\r\n");
    }
    let new = format!("{bom}{new}");
    Ok((old != Some(new.as_str()) && !(old.is_none() && new.is_empty())).then_some(new))
}

/// Whether the entry `have` is one mcpgate wrote: the same keys as the one it writes now (an
/// older URL, say), and a launched command that is `mcpgate stdio`.
fn ours(have: &serde_json::Value, want: &serde_json::Value) -> bool {
    let (Some(have), Some(want)) = (have.as_object(), want.as_object()) else { return false };
    let same_keys = have.len() == want.len() && have.keys().all(|k| want.contains_key(k));
    let stdio = have.get("args").is_none_or(|a| a.get(0).and_then(serde_json::Value::as_str) == Some("stdio"));
    same_keys && stdio
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
