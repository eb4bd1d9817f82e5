//! `edged`: parses arguments, loads and validates the config (exit 64 with the
//! bad field on error, before binding anything), then runs the daemon.

use std::process::ExitCode;

use clap::Parser;
use edge_daemon::cli::{Edged as Cli, EdgedCommand as Command};

/// Exit status for a bad config (EX_USAGE in sysexits.h).
const EXIT_BAD_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match edged_config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: invalid config:\n{e}", cli.config.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if matches!(cli.command, Some(Command::Check)) {
        println!(
            "{}: ok ({} VIPs, {} proxies, {} peers)",
            cli.config.display(),
            config.vips.len(),
            config.proxies.len(),
            config.bgp.peers.len()
        );
        return ExitCode::SUCCESS;
    }
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(edge_daemon::daemon::run(cli.config, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("edged failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // journald stamps lines itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
