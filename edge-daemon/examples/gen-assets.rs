//! Generates man pages (section 8) and shell completions (bash, zsh, fish)
//! for `edged` and `edgectl` from their clap definitions.
//! Usage: `cargo run -p edge-daemon --example gen-assets -- OUTDIR`.
//!
//! One page per program: NAME, SYNOPSIS, DESCRIPTION and OPTIONS from
//! clap_mangen; then COMMANDS, every subcommand with its synopsis, text and
//! options (clap_mangen would only point at `edgectl-stop(8)` and such,
//! pages nobody ships); then EXIT STATUS, EXAMPLES, FILES and SEE ALSO,
//! written here.

use std::fmt::Write as _;
use std::path::Path;

use clap::{Arg, ArgAction, Command, CommandFactory};
use clap_complete::Shell;

fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: gen-assets OUTDIR"))?;
    let out = Path::new(&out);
    for dir in ["man", "completions"] {
        std::fs::create_dir_all(out.join(dir))?;
    }
    for mut cmd in [
        edge_daemon::cli::Edged::command(),
        edge_daemon::cli::Edgectl::command(),
    ] {
        let name = cmd.get_name().to_string();
        std::fs::write(out.join("man").join(format!("{name}.8")), page(&cmd)?)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut cmd, &name, out.join("completions"))?;
        }
    }
    println!("wrote {}", out.display());
    Ok(())
}

/// The whole page of `cmd`.
fn page(cmd: &Command) -> anyhow::Result<Vec<u8>> {
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone()).section("8");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let mut text = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        command(&mut text, cmd.get_name(), sub);
    }
    text += match cmd.get_name() {
        "edged" => EDGED_TAIL,
        _ => EDGECTL_TAIL,
    };
    text += COMMON_TAIL;
    page.extend_from_slice(text.as_bytes());
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// One subcommand: `.SS` with its synopsis, its text, its own options
/// (the global ones are under OPTIONS above).
fn command(out: &mut String, program: &str, sub: &Command) {
    let args: Vec<&Arg> = sub
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set() && a.get_id() != "help")
        .collect();
    let mut synopsis = format!("\\fB{program} {}\\fR", sub.get_name());
    for a in &args {
        let _ = write!(synopsis, " {}", usage(a));
    }
    let _ = writeln!(out, ".SS \"{}\"", sub.get_name());
    let _ = writeln!(out, "{synopsis}");
    out.push_str(".PP\n");
    if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
        text(out, &about.to_string());
    }
    for a in args {
        out.push_str(".TP\n");
        let _ = writeln!(out, "{}", flag(a));
        let help = a
            .get_long_help()
            .or_else(|| a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        text(out, &help);
        let values: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !values.is_empty() {
            let _ = writeln!(out, "[possible values: {}]", escape(&values.join(", ")));
        }
    }
}

/// `[--fast]`, `VIP`, `[--x VALUE]`.
fn usage(a: &Arg) -> String {
    let value = value_name(a);
    if a.is_positional() {
        return format!("\\fI{value}\\fR");
    }
    let long = format!(
        "\\fB\\-\\-{}\\fR",
        a.get_long().unwrap_or(a.get_id().as_str())
    );
    match a.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count => format!("[{long}]"),
        _ => format!("[{long} \\fI{value}\\fR]"),
    }
}

/// The `.TP` tag: `-s, --socket SOCKET`, `--fast`, `VIP`.
fn flag(a: &Arg) -> String {
    if a.is_positional() {
        return format!("\\fI{}\\fR", value_name(a));
    }
    let mut s = String::new();
    if let Some(c) = a.get_short() {
        let _ = write!(s, "\\fB\\-{c}\\fR, ");
    }
    let _ = write!(s, "\\fB\\-\\-{}\\fR", a.get_long().unwrap_or_default());
    if !matches!(
        a.get_action(),
        ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count
    ) {
        let _ = write!(s, " \\fI{}\\fR", value_name(a));
    }
    s
}

fn value_name(a: &Arg) -> String {
    a.get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| a.get_id().as_str().to_uppercase())
}

/// Paragraphs of plain text as roff lines.
fn text(out: &mut String, s: &str) {
    for line in s.lines() {
        if line.trim().is_empty() {
            out.push_str(".PP\n");
        } else {
            let _ = writeln!(out, "{}", escape(line.trim()));
        }
    }
}

/// Escapes backslashes and dashes, and a leading `.` or `'` (roff control).
fn escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

const EDGED_TAIL: &str = r#".SH EXIT STATUS
.TP
0
Stopped cleanly (a graceful stop, a planned restart, \fB\-\-fast\-stop\fR), or the check or teardown succeeded.
.TP
64
The configuration is invalid: every bad field is named with its line and column (EX_USAGE).
.TP
69
\fBcheck \-\-diff\fR: the running edged could not be asked.
.TP
75
\fBteardown\fR: edged is still running; stop it first (EX_TEMPFAIL).
.TP
1
Any other failure, written to standard error (the journal under systemd).
.SH SIGNALS
.TP
SIGTERM, SIGINT
A graceful stop: every VIP is drained (handoff, GRACEFUL_SHUTDOWN for \fBnode.drain_time\fR), for at most \fBnode.stop_timeout\fR; then the routes are withdrawn, the VIP addresses removed, BIRD stopped. A second signal during the drain withdraws at once; so does the first one with \fB\-\-fast\-stop\fR.
.TP
SIGHUP
Re-read the configuration, as \fBedgectl reload\fR does.
.SH NOTES
\fBedged bird\-keeper\fR in the process list is the small keeper of edged's BIRD, started by edged itself: it keeps BIRD through a planned restart (\fBedgectl stop \-\-restart\fR, \fBsystemctl restart edged\fR) for \fBnode.restart_grace\fR, and kills it at once when edged dies (the node fails closed). It is not meant to be run by hand.
.PP
Under systemd, \fBsystemctl stop edged\fR is a graceful stop and \fBsystemctl restart edged\fR a planned restart that keeps every route and flow (the unit's ExecStop, \fI/usr/lib/edged/edged\-stop\fR, tells them apart).
.SH EXAMPLES
.TP
Check a configuration before installing it, and on the machine it is for:
.nf
edged check \-\-config /etc/edged/edged.yaml
.fi
.TP
Check a file written for another machine (its interfaces, groups and files are not here):
.nf
edged check \-\-no\-host\-checks \-\-config edge\-b.yaml
.fi
.TP
See what a new file would change on the running edged, without changing anything:
.nf
edged check \-\-diff \-\-config /etc/edged/edged.yaml.new
.fi
.TP
A hitless restart (new binary, same routes and flows):
.nf
systemctl restart edged        # or: edgectl stop \-\-restart, then start edged
.fi
.TP
Take a node out of service and stop it:
.nf
edgectl maintenance on && edgectl vips    # wait for "withdrawn"
systemctl stop edged
.fi
.TP
After stopping edged for good, remove its data plane and leftovers (the package does this on removal):
.nf
edged teardown \-\-config /etc/edged/edged.yaml
.fi
"#;

const EDGECTL_TAIL: &str = r#".SH EXIT STATUS
.TP
0
Done.
.TP
69
edged is not running on the socket, or the socket refused this user (root or \fBnode.control_group\fR only).
.TP
1
edged refused the request (an unknown VIP, a configuration \fBreload\fR rejected, a \fBreload \-\-dry\-run\fR of a file it would refuse); the reason is on standard error.
.SH ENVIRONMENT
.TP
EDGED_SOCKET
The control socket, as \fB\-\-socket\fR.
.SH EXAMPLES
.TP
Drain one VIP (GRACEFUL_SHUTDOWN for node.drain_time, then withdraw), and bring it back:
.nf
edgectl drain web        # by name or address
edgectl vips             # DECISION: draining, then withdrawn
edgectl undrain web
.fi
.TP
Maintenance of the whole node:
.nf
edgectl maintenance on
edgectl vips             # wait until every VIP is withdrawn
edgectl maintenance off
.fi
.TP
Reload a changed configuration, looking at the difference first:
.nf
edgectl reload \-\-dry\-run
edgectl reload           # or: systemctl reload edged
.fi
.TP
A hitless restart: routes, VIP addresses and flows stay for the next edged:
.nf
systemctl restart edged  # or, without systemd: edgectl stop \-\-restart, then start edged
.fi
.TP
Stop: drain every VIP first (default), or withdraw at once:
.nf
edgectl stop
edgectl stop \-\-fast
.fi
.TP
Check a file for another machine before copying it there:
.nf
edged check \-\-no\-host\-checks \-\-config edge\-b.yaml
.fi
.TP
For scripts:
.nf
edgectl \-o json vips | jq \-r '.[] | select(.route != "announced") | .name'
.fi
"#;

const COMMON_TAIL: &str = r#".SH FILES
.TP
\fI/etc/edged/edged.yaml\fR
The configuration (a conffile). Every field with its default: \fI/usr/share/doc/edged/examples/full.yaml\fR.
.TP
\fI/run/edged/edged.sock\fR
The control socket (\fBnode.control_socket\fR), mode 0660, group \fBnode.control_group\fR (the package creates the group \fBedged\fR).
.TP
\fI/var/lib/edged/intents.json\fR
Drains, maintenance and runtime weights; they survive restarts and upgrades (\fBnode.state_dir\fR).
.TP
\fI/var/lib/edged/bird/\fR
The managed BIRD's bird.conf, bird.ctl, bird.pid, and keeper.sock.
.TP
\fI/sys/fs/bpf/edged/\fR
The pinned XDP program, maps and links (\fBforwarder.pin_dir\fR): a restart re-adopts them and every flow.
.TP
\fI/lib/systemd/system/edged.service\fR, \fI/usr/lib/edged/edged\-stop\fR
The unit and its ExecStop (a planned restart for \fBsystemctl restart\fR, a graceful stop otherwise).
.TP
\fI/usr/lib/sysusers.d/edged.conf\fR
Creates the group \fBedged\fR.
.TP
\fI/usr/share/doc/edged/operator\-guide.md\fR
The operator guide.
.SH SEE ALSO
\fBedged\fR(8), \fBedgectl\fR(8), \fBbird\fR(8), \fBsystemctl\fR(1), \fBsystemd.exec\fR(5)
"#;
