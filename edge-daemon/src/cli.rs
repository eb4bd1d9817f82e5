//! Command-line definitions of `edged` and `edgectl`. They live in the
//! library so man pages and shell completions are generated from the same
//! clap definitions (`examples/gen-assets.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The edged edge-node daemon: health-checked anycast VIPs with an XDP
/// forwarder and BGP through BIRD.
#[derive(Parser)]
#[command(
    name = "edged",
    version,
    about = "edged edge-node daemon: health-checked anycast VIPs, XDP forwarder, BGP through BIRD"
)]
pub struct Edged {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "/etc/edged/edged.yaml")]
    pub config: PathBuf,
    /// On SIGTERM or SIGINT withdraw every VIP at once, without draining
    /// first (node.stop_timeout).
    #[arg(long)]
    pub fast_stop: bool,
    #[command(subcommand)]
    pub command: Option<EdgedCommand>,
}

/// `edged` subcommands.
#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
pub enum EdgedCommand {
    /// Run the daemon (the default).
    Run,
    /// Validate the config and exit: 0 if valid, 64 with the bad field
    /// otherwise. The same validation as start and reload, host facts
    /// (interfaces, groups, files) included.
    Check {
        /// Skip the facts of this host (checking a file for another machine).
        #[arg(long)]
        no_host_checks: bool,
        /// Also print what the file would change on the running edged (its
        /// node.control_socket), without changing anything.
        #[arg(long)]
        diff: bool,
    },
    /// With edged stopped, remove what it keeps for its next start: a BIRD
    /// left for a planned restart, its VIP addresses, and the XDP program
    /// and maps pinned in forwarder.pin_dir (detached from the uplinks).
    /// Refuses (exit 75) while edged answers on node.control_socket. Run by
    /// the package on removal; the config is read as with
    /// `check --no-host-checks`.
    Teardown,
}

/// Operate an edged node: status, drains, maintenance, reload.
#[derive(Parser)]
#[command(
    name = "edgectl",
    version,
    about = "Operate an edged node: status, VIPs, proxies, peers, drains, maintenance, reload"
)]
pub struct Edgectl {
    /// edged's control socket.
    #[arg(
        long,
        short,
        global = true,
        env = "EDGED_SOCKET",
        default_value = "/run/edged/edged.sock"
    )]
    pub socket: PathBuf,
    /// Output format of read commands.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    pub command: EdgectlCommand,
}

/// Output format.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The control API's JSON, for scripts.
    Json,
}

/// `edgectl` subcommands.
#[derive(Subcommand)]
pub enum EdgectlCommand {
    /// Node summary: components, VIP counts, last reload.
    Status,
    /// Every VIP: announce state and why.
    Vips,
    /// Every proxy: weight and health per VIP.
    Proxies,
    /// BGP peers and session state.
    Peers,
    /// Drain a VIP (name or address): graceful shutdown, then withdraw.
    Drain {
        /// VIP name or address.
        vip: String,
    },
    /// Undo a drain.
    Undrain {
        /// VIP name or address.
        vip: String,
    },
    /// Drain (on) or restore (off) every VIP of the node.
    Maintenance {
        /// on or off.
        state: OnOff,
    },
    /// Re-read the config; a bad file is rejected and the running one kept.
    Reload {
        /// Only print what the file would change: VIPs, checks, routes,
        /// tables, addresses, BGP.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop edged: drain every VIP first, then withdraw (default); or keep
    /// everything for the next edged (--restart); or withdraw at once
    /// (--fast). Waits until edged has exited.
    Stop {
        /// A planned restart: BGP routes, VIP addresses and the data plane
        /// (every flow) stay up for the next edged (node.restart_grace).
        #[arg(long, conflicts_with = "fast")]
        restart: bool,
        /// Withdraw every VIP now, without draining.
        #[arg(long)]
        fast: bool,
    },
    /// Set a proxy's weight at run time (e.g. a canary at 10 %), or `reset`
    /// it to the config's. Persists across restarts.
    Weight {
        /// Proxy name.
        proxy: String,
        /// A weight (0-10000) or `reset`.
        weight: String,
    },
}

/// on/off.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OnOff {
    /// Turn it on.
    On,
    /// Turn it off.
    Off,
}
