//! The audit trail: one JSON line per request that reaches a server, and per refusal — when,
//! who (user and OAuth client), which session, which server, what (method and the tool, prompt
//! or resource it names), how it ended, how long it took. Argument values only when configured;
//! tokens never (nothing here reads a header). To a file, opened for appending (0600) and opened
//! again on SIGHUP (log rotation), or to stdout.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

/// Where the trail goes, and whether argument values go with it (`mcpgate.audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `None`: stdout.
    pub file: Option<PathBuf>,
    pub arguments: bool,
}

pub struct Audit {
    settings: Settings,
    file: Mutex<Option<std::fs::File>>,
}

/// One request's line, begun when it is known who asks for what and finished where it ends.
#[derive(Debug, Default)]
pub struct Entry {
    pub user: Option<String>,
    pub client_id: Option<String>,
    pub session: Option<String>,
    pub method: String,
    /// The tool or prompt name, or the resource URI, as the client wrote it.
    pub name: Option<String>,
    pub arguments: Option<Value>,
}

impl Audit {
    pub fn open(settings: Settings) -> std::io::Result<Audit> {
        let file = settings.file.as_ref().map(|p| append(p)).transpose()?;
        Ok(Audit { settings, file: Mutex::new(file) })
    }

    pub fn with_arguments(&self) -> bool {
        self.settings.arguments
    }

    /// Opens the file again (after a rotation moved it away).
    pub fn reopen(&self) {
        let Some(path) = &self.settings.file else { return };
        match append(path) {
            Ok(f) => *self.file.lock().unwrap_or_else(|p| p.into_inner()) = Some(f),
            Err(e) => tracing::error!("cannot reopen the audit file {}: {e}", path.display()),
        }
    }

    /// Writes `entry` as finished: at `server` (`None`: it reached none), with `outcome`.
    pub fn write(&self, entry: &Entry, server: Option<&str>, outcome: &str, took: Duration) {
        let mut line = Map::new();
        line.insert("time".into(), json!(crate::token::rfc3339_millis(SystemTime::now())));
        let mut put = |k: &str, v: Option<&str>| {
            line.insert(k.into(), v.map_or(Value::Null, |v| Value::String(v.to_owned())));
        };
        put("user", entry.user.as_deref());
        put("client_id", entry.client_id.as_deref());
        put("session", entry.session.as_deref());
        put("server", server);
        put("method", Some(&entry.method));
        put("name", entry.name.as_deref());
        put("outcome", Some(outcome));
        line.insert("latency_ms".into(), json!((took.as_secs_f64() * 1000.0 * 10.0).round() / 10.0));
        if let Some(args) = &entry.arguments {
            line.insert("arguments".into(), args.clone());
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let written = match file.as_mut() {
            Some(f) => f.write_all(text.as_bytes()),
            None => std::io::stdout().lock().write_all(text.as_bytes()),
        };
        if let Err(e) = written {
            tracing::error!("cannot write the audit trail: {e}");
        }
    }
}

fn append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        let at = |ms: u64| crate::token::rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_796_655_346_007), "2026-12-07T14:55:46.007Z");
    }

    #[test]
    fn a_line_has_every_field_and_arguments_only_when_given() {
        let dir = std::env::temp_dir().join(format!("mcpgate-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let audit = Audit::open(Settings { file: Some(path.clone()), arguments: false }).unwrap();
        let entry = Entry {
            user: Some("alice@example.com".into()),
            method: "tools/call".into(),
            name: Some("echo".into()),
            ..Entry::default()
        };
        audit.write(&entry, Some("local"), "ok", Duration::from_micros(1500));
        let text = std::fs::read_to_string(&path).unwrap();
        let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["user"], "alice@example.com");
        assert_eq!(
            (line["server"].as_str(), line["outcome"].as_str(), line["latency_ms"].as_f64()),
            (Some("local"), Some("ok"), Some(1.5))
        );
        assert!(line.get("arguments").is_none() && line["session"].is_null());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
