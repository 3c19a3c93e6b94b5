//! The `mcpgate` command: parse, start logging, hand over to the chosen mode.

use std::process::ExitCode;

use clap::Parser;
use mcpgate::cli::{Cli, Command};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Command::Stdio(args) = &cli.command {
        cli.log.quiet |= args.silent;
    }
    mcpgate::log::init(&cli.log);
    // A single-threaded runtime: no task is handed between threads, which measured 29.7k vs 21.0k
    // req/s against the work-stealing runtime at concurrency 32 (docs/benchmarks.md). `connect` and
    // `serve` use more cores as nginx does, with an event loop per core of their own
    // (src/http/server.rs); `stdio` serves one client on this one.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Connect(args) => {
                let opts = args.into_options()?;
                let shutdown = mcpgate::shutdown::on_signals();
                mcpgate::connect::run(opts, shutdown).await.map_err(|e| e.to_string())
            }
            Command::Stdio(args) => {
                let opts = mcpgate::stdio::Options {
                    upstream: args.upstream.into_options(&args.url, true)?,
                    banner: !args.no_banner,
                    translation: Some(mcpgate::serve::translator::translation()),
                };
                let shutdown = mcpgate::shutdown::on_signals();
                mcpgate::stdio::run(opts, shutdown).await.map_err(|e| e.to_string())
            }
            Command::Login(args) => mcpgate::login::login(args.upstream.into_options(&args.url, true)?).await,
            Command::Logout(args) => mcpgate::login::logout(args),
            Command::Status(args) => mcpgate::login::status(args),
            Command::Check(args) => check(&args.config),
            Command::Install(args) => install(args),
            Command::Serve(args) => {
                let shutdown = mcpgate::shutdown::on_signals();
                mcpgate::serve::run(mcpgate::serve::Options { config: args.config, listen: args.listen }, shutdown)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) if message.is_empty() => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("mcpgate: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `mcpgate install`: what was written (or the file, with `--print`) on stdout.
fn install(args: mcpgate::cli::InstallArgs) -> Result<(), String> {
    let opts = mcpgate::install::Options {
        client: args.client,
        url: args.url,
        name: args.name,
        print: args.print,
        output: args.output,
        project: args.project,
        remove: args.remove,
        force: args.force,
    };
    let places = mcpgate::install::Places::from_env()?;
    let program = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "mcpgate".into());
    let done = mcpgate::install::run(&opts, &places, &program)?;
    println!("{done}");
    Ok(())
}

/// `mcpgate check`: every problem on its own line (`file:line:col: path: message`), or a summary:
/// each server with the prefix of its tools on `/mcp` and its own endpoint.
/// URLs are printed as `upstream::display_url` shows them, commands by their first word: what a
/// configuration holds beyond that may be a secret.
fn check(path: &std::path::Path) -> Result<(), String> {
    use std::io::Write;
    match mcpgate::config::load(path) {
        Ok(cfg) => {
            let enabled = cfg.enabled;
            // One buffered writer: a file may list 100,000 servers.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let _ = writeln!(
                out,
                "{}: valid; {} server(s), {enabled} enabled; would listen on {}",
                path.display(),
                cfg.servers.len(),
                cfg.gateway.listen
            );
            for s in &cfg.servers {
                let what = match &s.transport {
                    mcpgate::config::Transport::Stdio { command, .. } => {
                        format!("stdio: {}", command.split_whitespace().next().unwrap_or_default())
                    }
                    mcpgate::config::Transport::Remote { url, kind, .. } => {
                        format!("{kind:?}: {}", mcpgate::url::display(url))
                    }
                };
                if !s.enabled {
                    let _ = writeln!(out, "  {} [disabled] ({what})", s.name);
                    continue;
                }
                // How clients name its tools and reach it alone (`"time.v2"` → `time_v2__`).
                let prefix = mcpgate::config::validate_prefix(s, enabled, &cfg.gateway.separator);
                let prefix = if prefix.is_empty() { "unprefixed".to_owned() } else { format!("{prefix}<tool>") };
                let _ = writeln!(
                    out,
                    "  {} ({what}): {prefix} on /mcp, alone on /servers/{}/mcp",
                    s.name,
                    mcpgate::url::encode_segment(&s.name)
                );
            }
            if !cfg.ignored.is_empty() {
                let _ = writeln!(out, "  ignored (other clients' keys): {}", cfg.ignored.join(", "));
            }
            out.flush().map_err(|e| format!("cannot write the summary: {e}"))
        }
        Err(invalid) => {
            eprintln!("{invalid}");
            Err(String::new())
        }
    }
}
