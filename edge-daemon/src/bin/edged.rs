//! `edged`: parses arguments, loads and validates the config (exit 64 with the
//! bad field on error, before binding anything), then runs the daemon.
//! `edged bird-keeper ...` is the keeper of edged's BIRD (see
//! `edged_bgp::keeper`), started by edged itself.

use std::process::ExitCode;

use clap::Parser;
use edge_daemon::cli::{Edged as Cli, EdgedCommand as Command};
use edge_daemon::specs::{self, HostChecks};

/// Exit status for a bad config (EX_USAGE in sysexits.h).
const EXIT_BAD_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("bird-keeper") {
        return ExitCode::from(edged_bgp::keeper::main(&args[2..]) as u8);
    }
    let cli = Cli::parse();
    let host = match cli.command {
        Some(Command::Check {
            no_host_checks: true,
            ..
        })
        | Some(Command::Teardown) => HostChecks::No,
        _ => HostChecks::Yes,
    };
    let (config, specs) = match specs::load(&cli.config, host) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: invalid config:\n{e}", cli.config.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if let Some(Command::Check { diff, .. }) = cli.command {
        println!(
            "{}: ok ({} VIPs, {} proxies, {} peers)",
            cli.config.display(),
            config.vips.len(),
            config.proxies.len(),
            config.bgp.peers.len()
        );
        if diff {
            return print_diff(&cli.config, &config.node.control_socket);
        }
        return ExitCode::SUCCESS;
    }
    if cli.command == Some(Command::Teardown) {
        return teardown(&config, &specs);
    }
    init_logging();
    // A parent may hand us its blocked signals (a lab that waits for
    // Ctrl-C with sigwait): the stop and reload signals must reach us.
    let mut mask = nix::sys::signal::SigSet::empty();
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        mask.add(sig);
    }
    if let Err(e) = mask.thread_unblock() {
        tracing::warn!("cannot unblock SIGTERM, SIGINT, SIGHUP: {e}");
    }
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
    let opts = edge_daemon::daemon::Options {
        fast_stop: cli.fast_stop,
    };
    match runtime.block_on(edge_daemon::daemon::run(cli.config, config, specs, opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("edged failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `edged teardown`: one line per thing removed; 75 (EX_TEMPFAIL) while
/// edged runs.
fn teardown(config: &edged_config::Config, specs: &specs::Specs) -> ExitCode {
    use edge_daemon::teardown::{TeardownError, run};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(config, specs)) {
        Ok(done) if done.is_empty() => {
            println!("edged teardown: nothing to remove");
            ExitCode::SUCCESS
        }
        Ok(done) => {
            for d in done {
                println!("edged teardown: {d}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edged teardown: {e}");
            ExitCode::from(match e {
                TeardownError::Running { .. } => 75,
                _ => 1,
            })
        }
    }
}

/// `edged check --diff`: asks the running edged what this file would change.
fn print_diff(path: &std::path::Path, socket: &std::path::Path) -> ExitCode {
    use edge_daemon::control::{client, proto::ConfigDiff};
    let text = match edged_config::read_bounded(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let r = rt.block_on(client::call_with_body(
        socket,
        "POST",
        "/v1/diff",
        text.into_bytes(),
    ));
    match r.map(serde_json::from_value::<ConfigDiff>) {
        Ok(Ok(d)) if d.valid => {
            println!("against the running edged ({}):", socket.display());
            for c in &d.changes {
                println!("  {c}");
            }
            ExitCode::SUCCESS
        }
        Ok(Ok(d)) => {
            eprintln!(
                "the running edged would refuse it:\n{}",
                d.error.unwrap_or_default()
            );
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Ok(Err(e)) => {
            eprintln!("edged answered something else: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot ask the running edged: {e}");
            ExitCode::from(69)
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
