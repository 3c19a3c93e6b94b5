//! `mcpgate install CLIENT` against each client's real file format, in a scratch home: an existing
//! file with other servers, comments and keys mcpgate does not know keeps all of them (the golden
//! files in tests/golden/install: `<client>.before` as found, `<client>.after` as written); the
//! entry reads back as the client reads it; installing again changes nothing; `--remove`
//! restores the file; a wrapper's own file carries the project's servers; nothing with a
//! credential in it is written.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::harness::*;

const URL: &str = "http://127.0.0.1:8001/mcp";

/// Each client, and where its user file is under a Linux home.
const CLIENTS: [(&str, &str); 6] = [
    ("claude-code", ".claude.json"),
    ("claude-desktop", ".config/Claude/claude_desktop_config.json"),
    ("cursor", ".cursor/mcp.json"),
    ("vscode", ".config/Code/User/mcp.json"),
    ("codex", ".codex/config.toml"),
    ("gemini", ".gemini/settings.json"),
];

fn golden(name: &str) -> String {
    let path = repo().join("tests/golden/install").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `mcpgate install ARGS` with `home` as the user's home (and working directory).
fn install(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(mcpgate_bin())
        .arg("install")
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CODEX_HOME")
        .env_remove("APPDATA")
        .current_dir(home)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The file as its client reads it.
fn read_back(client: &str, text: &str) -> Value {
    if client == "codex" {
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        let url = doc["mcp_servers"]["mcpgate"]["url"].as_str().map(str::to_owned);
        let docs = doc["mcp_servers"]["docs"]["command"].as_str().map(str::to_owned);
        return json!({"mcpgate": {"url": url}, "docs": docs});
    }
    let root = jsonc_parser::cst::CstRootNode::parse(text, &Default::default()).unwrap();
    root.value().and_then(|v| v.to_serde_value()).unwrap()
}

#[test]
fn install_keeps_everything_else_reads_back_changes_nothing_twice_and_removes_cleanly() {
    for (client, rel) in CLIENTS {
        let home = tempdir(&format!("install-{client}"));
        let file = home.join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let before = golden(&format!("{client}.before"));
        std::fs::write(&file, &before).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();

        let (ok, out, err) = install(&home, &[client, "--url", URL]);
        assert!(ok, "{client}: {err}");
        assert!(out.contains(&file.display().to_string()), "{client}: {out}");
        let after = std::fs::read_to_string(&file).unwrap();
        let want = golden(&format!("{client}.after")).replace("{MCPGATE}", mcpgate_bin());
        assert_eq!(after, want, "{client}: the file as written");
        let backup = PathBuf::from(format!("{}.mcpgate-backup", file.display()));
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), before, "{client}: the backup is the old file");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{client}: the file's mode is kept");

        // As the client reads it: the entry, and what was there.
        let v = read_back(client, &after);
        let entry = match client {
            "codex" => v["mcpgate"].clone(),
            "vscode" => v["servers"]["mcpgate"].clone(),
            _ => v["mcpServers"]["mcpgate"].clone(),
        };
        let expected = match client {
            "claude-code" | "vscode" => json!({"type": "http", "url": URL}),
            "claude-desktop" => json!({"command": mcpgate_bin(), "args": ["stdio", URL]}),
            "gemini" => json!({"httpUrl": URL}),
            _ => json!({"url": URL}),
        };
        // Exactly this: nothing but the URL (and Claude Desktop's command), no header, no token.
        assert_eq!(entry, expected, "{client}: {v}");

        // Twice: nothing changes.
        let (ok, out, err) = install(&home, &[client, "--url", URL]);
        assert!(ok && out.contains("up to date"), "{client}: {out} {err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), after);

        // --remove: the file as it was.
        let (ok, _, err) = install(&home, &[client, "--remove"]);
        assert!(ok, "{client}: {err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "{client}: --remove restores the file");
        let (ok, out, _) = install(&home, &[client, "--remove"]);
        assert!(ok && out.contains("up to date"), "{client}: {out}");
    }
}

#[test]
fn a_wrappers_own_file_carries_the_projects_servers_and_a_missing_file_is_made_0600() {
    let home = tempdir("install-output");
    let project = home.join("app");
    std::fs::create_dir_all(&project).unwrap();
    let servers = json!({"mcpServers": {"db": {"command": "uvx", "args": ["mcp-server-sqlite"]}}});
    std::fs::write(project.join(".mcp.json"), serde_json::to_string_pretty(&servers).unwrap()).unwrap();
    let out_file = home.join("agent-1.json");
    let args = ["claude-code", "--url", "http://127.0.0.1:8001/agents/one/mcp", "--name", "gateway"];
    let project_arg = project.to_str().unwrap();

    // --print: the file, not written.
    let (ok, printed, err) = install(&home, &[&args[..], &["--project", project_arg, "--print"]].concat());
    assert!(ok, "{err}");
    let (ok, _, err) =
        install(&home, &[&args[..], &["--project", project_arg, "--output", out_file.to_str().unwrap()]].concat());
    assert!(ok, "{err}");
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(written.trim_end(), printed.trim_end(), "--print shows what is written");
    let v: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(v["mcpServers"]["db"]["command"], json!("uvx"), "{v}");
    assert_eq!(v["mcpServers"]["gateway"], json!({"type": "http", "url": "http://127.0.0.1:8001/agents/one/mcp"}));
    assert_eq!(std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777, 0o600);

    // A client's file missing altogether: made, with the entry alone.
    let (ok, _, err) = install(&home, &["cursor"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(home.join(".cursor/mcp.json")).unwrap()).unwrap();
    assert_eq!(v, json!({"mcpServers": {"mcpgate": {"url": URL}}}));
}

#[test]
fn a_credential_in_the_url_or_a_broken_file_is_refused_and_nothing_is_written() {
    let home = tempdir("install-refused");
    for url in ["http://127.0.0.1:8001/mcp?access_token=s3cret", "http://user:s3cret@127.0.0.1:8001/mcp", "ftp://h/mcp"]
    {
        let (ok, _, err) = install(&home, &["cursor", "--url", url]);
        assert!(!ok && err.contains("--url"), "{url}: {err}");
        assert!(!err.contains("s3cret"), "the refusal repeats no secret: {err}");
    }
    assert!(!home.join(".cursor").exists(), "nothing written");
    let file = home.join(".gemini/settings.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "{ \"mcpServers\": { \"x\": ").unwrap();
    let (ok, _, err) = install(&home, &["gemini"]);
    assert!(!ok && err.contains("settings.json"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{ \"mcpServers\": { \"x\": ");
    let (ok, _, err) = install(&home, &["vscode", "--name", "bad name!"]);
    assert!(!ok && err.contains("--name"), "{err}");
}

#[test]
fn another_servers_entry_is_never_taken_the_first_backup_stays_and_bom_crlf_and_empty_objects_survive() {
    let home = tempdir("install-edges");
    let file = home.join(".cursor/mcp.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    // Someone else's server under the name mcpgate would use: neither replaced nor removed.
    let theirs =
        "{\n  \"mcpServers\": {\n    \"mcpgate\": { \"command\": \"npx\", \"args\": [\"their-server\"] }\n  }\n}\n";
    std::fs::write(&file, theirs).unwrap();
    for args in [&["cursor"][..], &["cursor", "--remove"][..]] {
        let (ok, _, err) = install(&home, args);
        assert!(!ok && err.contains("not mcpgate's"), "{args:?}: {err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), theirs);
    }
    let (ok, _, err) = install(&home, &["cursor", "--force"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(v["mcpServers"]["mcpgate"], json!({"url": URL}));

    // Installed again with another URL: the backup is still the file before mcpgate's first write.
    let (ok, _, err) = install(&home, &["cursor", "--url", "http://127.0.0.1:9000/mcp"]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(format!("{}.mcpgate-backup", file.display())).unwrap(), theirs);

    // An empty servers object, a byte-order mark, CRLF line ends: all as they were after --remove.
    let gemini = home.join(".gemini/settings.json");
    std::fs::create_dir_all(gemini.parent().unwrap()).unwrap();
    let before = "\u{feff}{\r\n  \"theme\": \"GitHub\",\r\n  \"mcpServers\": {}\r\n}\r\n";
    std::fs::write(&gemini, before).unwrap();
    let (ok, _, err) = install(&home, &["gemini"]);
    assert!(ok, "{err}");
    let after = std::fs::read_to_string(&gemini).unwrap();
    assert!(after.starts_with('\u{feff}') && !after.replace("\r\n", "").contains('\n'), "{after:?}");
    assert!(after.contains("\"httpUrl\": \"http://127.0.0.1:8001/mcp\""), "{after:?}");
    let (ok, _, err) = install(&home, &["gemini", "--remove"]);
    assert!(ok, "{err}");
    let removed = std::fs::read_to_string(&gemini).unwrap();
    let v = read_back("gemini", removed.trim_start_matches('\u{feff}'));
    assert_eq!(v, json!({"theme": "GitHub", "mcpServers": {}}), "{removed:?}");

    // Nothing to remove from a file that is not there: nothing written.
    let none = home.join("none.json");
    let (ok, out, _) = install(&home, &["claude-code", "--remove", "--output", none.to_str().unwrap()]);
    assert!(ok && out.contains("up to date") && !none.exists(), "{out}");
}
