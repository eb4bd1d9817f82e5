//! `edged-lab`: the namespace lab on this machine.
//!
//! - `edged-lab up [--topology FILE]`: build the lab (default: the embedded
//!   tests/lab/topology.yaml), start edged on every node, print how to reach
//!   it, wait for Ctrl-C or SIGTERM, tear everything down.
//! - `edged-lab cleanup`: remove what a crashed run left (namespaces
//!   `edl<pid>x<n>` whose run is gone, and their processes); a lab still
//!   running is left alone.
//! - `edged-lab hold --socket S --count N`: a hostile local client for the
//!   fault tests: N connections to a Unix socket, each with half a request
//!   sent, held until stdin closes.
//! - `edged-lab dns-responder --bind ADDR --rcode-file F`: a DNS server for
//!   the health tests that answers every query with the response code in F.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use edged_testlab::lab::{self, Lab, Spec};
use nix::sys::signal::{SigSet, Signal};

/// The edged namespace lab.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the lab and keep it up until Ctrl-C.
    Up {
        /// Topology file (default: the embedded default lab).
        #[arg(long)]
        topology: Option<PathBuf>,
        /// The edged binary (default: next to this one).
        #[arg(long)]
        edged: Option<PathBuf>,
    },
    /// Build the lab, walk through traffic, failures, a canary and a drain,
    /// tear down.
    Demo,
    /// Remove namespaces and processes a crashed lab left behind.
    Cleanup,
    /// Hold N half-sent requests on a Unix socket until stdin closes.
    #[command(hide = true)]
    Hold {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        count: usize,
    },
    /// Answer every DNS query on ADDR with the response code in FILE.
    #[command(hide = true)]
    DnsResponder {
        #[arg(long)]
        bind: std::net::SocketAddr,
        #[arg(long)]
        rcode_file: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::DnsResponder { bind, rcode_file } => {
            let sock = std::net::UdpSocket::bind(bind)?;
            let mut buf = [0u8; 512];
            loop {
                let (n, peer) = sock.recv_from(&mut buf)?;
                let rcode: u8 = std::fs::read_to_string(&rcode_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                if n < 12 {
                    continue;
                }
                buf[2] |= 0x80;
                buf[3] = (buf[3] & 0xf0) | (rcode & 0x0f);
                let _ = sock.send_to(&buf[..n], peer);
            }
        }
        Command::Hold { socket, count } => {
            use std::io::{Read, Write};
            let mut held = Vec::with_capacity(count);
            let mut refused = 0usize;
            let t0 = std::time::Instant::now();
            while held.len() < count && t0.elapsed() < std::time::Duration::from_secs(30) {
                match std::os::unix::net::UnixStream::connect(&socket) {
                    Ok(mut s) => {
                        let _ = s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: edged\r\n");
                        held.push(s);
                    }
                    Err(_) => refused += 1,
                }
            }
            println!("held {} refused {refused}", held.len());
            let _ = std::io::stdin().read(&mut [0u8; 1]);
            Ok(())
        }
        Command::Cleanup => {
            println!("removed {} lab namespaces", lab::cleanup(None));
            Ok(())
        }
        Command::Demo => {
            let spec = Spec::parse(lab::spec::DEFAULT).map_err(anyhow::Error::msg)?;
            let edged = std::env::current_exe()?.with_file_name("edged");
            let edgectl = std::env::current_exe()?.with_file_name("edgectl");
            let mut signals = SigSet::empty();
            signals.add(Signal::SIGINT);
            signals.add(Signal::SIGTERM);
            signals.thread_block()?;
            // Ctrl-C ends the demo through the same teardown.
            std::thread::spawn(move || {
                if signals.wait().is_ok() {
                    lab::cleanup(Some(std::process::id() % 1_000_000));
                    std::process::exit(130);
                }
            });
            println!(
                "== building the lab: a top-of-rack (BIRD), 2 edge nodes with edged and XDP, 4 nginx proxies, a client"
            );
            let mut lab = Lab::up(spec, &edged);
            for i in 0..lab.nodes.len() {
                lab.start_node(i);
            }
            let result = lab::demo::run(&mut lab, &edgectl);
            println!("\n== tearing down");
            drop(lab);
            result.map_err(anyhow::Error::msg)?;
            println!("demo done");
            Ok(())
        }
        Command::Up { topology, edged } => {
            let text = match topology {
                Some(p) => std::fs::read_to_string(&p)?,
                None => lab::spec::DEFAULT.to_string(),
            };
            let spec = Spec::parse(&text).map_err(anyhow::Error::msg)?;
            let edged = match edged {
                Some(p) => p,
                None => std::env::current_exe()?.with_file_name("edged"),
            };
            // Ctrl-C and SIGTERM are taken synchronously below, so the lab's
            // guards run and tear everything down.
            let mut signals = SigSet::empty();
            signals.add(Signal::SIGINT);
            signals.add(Signal::SIGTERM);
            signals.thread_block()?;
            let mut lab = Lab::up(spec, &edged);
            for i in 0..lab.nodes.len() {
                lab.start_node(i);
            }
            println!(
                "lab up: ToR {}, client {}",
                lab.tor_ns.name(),
                lab.client.name()
            );
            for (i, n) in lab.nodes.iter().enumerate() {
                println!(
                    "  {}: netns {}, edgectl --socket {}",
                    n.name,
                    n.ns.name(),
                    lab.socket(i).display()
                );
            }
            println!("Ctrl-C tears it down.");
            let sig = signals.wait()?;
            println!("{sig:?}: tearing down");
            drop(lab);
            Ok(())
        }
    }
}
