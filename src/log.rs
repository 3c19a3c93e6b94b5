//! Logging to stderr: readable text by default, JSON on request. `-v` turns on mcpgate's debug
//! events only: dependencies stay at `warn`, since some print protocol frames at debug.

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

pub fn init(args: &LogArgs) {
    let level = if args.quiet {
        "error"
    } else {
        match (args.verbose, args.debug) {
            (0, false) => "mcpgate=info,warn",
            (0 | 1, _) => "mcpgate=debug,warn",
            _ => "mcpgate=trace,info",
        }
    };
    // MCPGATE_LOG (EnvFilter syntax) overrides, for those who know what they ask for.
    let filter = EnvFilter::try_from_env("MCPGATE_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match args.log_format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
