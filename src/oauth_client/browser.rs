//! Opening the user's browser at the authorization URL. The URL is always printed on stderr
//! too, for headless machines and for when no browser can be started. The browser never
//! inherits stdout: in `stdio` mode that is the protocol stream.

use std::process::Stdio;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Browser {
    /// `$BROWSER`, else `open` (macOS) or `xdg-open`.
    System,
    /// A command; the URL is passed as its last argument.
    Command(String),
    /// Print the URL only.
    Off,
}

pub fn open(browser: &Browser, url: &str, server: &str) {
    eprintln!("mcpgate: to sign in to {server}, open this URL in a browser:\n\n    {url}\n");
    let command = match browser {
        Browser::Off => return,
        Browser::Command(c) => c.clone(),
        Browser::System => match std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty()) {
            Some(b) => b,
            None if cfg!(target_os = "macos") => "open".to_owned(),
            None => "xdg-open".to_owned(),
        },
    };
    // The URL is a positional argument of the shell, never part of the command text.
    let spawned = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} \"$1\""))
        .arg("mcpgate-browser")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn();
    match spawned {
        Ok(mut child) => {
            tokio::spawn(async move {
                if let Ok(status) = child.wait().await
                    && !status.success()
                {
                    tracing::warn!("the browser command exited with {status}; open the URL above by hand");
                }
            });
        }
        Err(e) => tracing::warn!("could not start a browser ({e}); open the URL above by hand"),
    }
}
