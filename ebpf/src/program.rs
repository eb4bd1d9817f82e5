//! The XDP program on the uplinks: opened from its pin, attached to each
//! configured uplink (one pinned link per uplink, so the attachment
//! survives edged), re-attached when a link is found gone, and run once
//! through `BPF_PROG_TEST_RUN`.

use std::path::{Path, PathBuf};

use aya::programs::links::FdLink;
use aya::programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode as AyaMode};
use aya_obj::programs::XdpAttachType;

use crate::load::pin_err;
use crate::{ForwarderError, XdpMode};

/// The pinned program and the uplinks it is attached to.
pub(crate) struct Program {
    prog: Xdp,
    pin_dir: PathBuf,
    mode: XdpMode,
    uplinks: Vec<String>,
}

impl Program {
    /// Opens the program pinned in `pin_dir` (attaching nothing).
    pub fn open(pin_dir: &Path, mode: XdpMode, uplinks: &[String]) -> Result<Self, ForwarderError> {
        let prog =
            Xdp::from_pin(pin_dir.join("prog"), XdpAttachType::Interface).map_err(|source| {
                ForwarderError::Program {
                    op: "open pinned program",
                    source: Box::new(source),
                }
            })?;
        Ok(Program {
            prog,
            pin_dir: pin_dir.to_path_buf(),
            mode,
            uplinks: uplinks.to_vec(),
        })
    }

    /// Pin name prefix and attach flags of the mode.
    fn mode(&self) -> (&'static str, AyaMode) {
        match self.mode {
            XdpMode::Native => ("drv", AyaMode::Driver),
            XdpMode::Generic => ("skb", AyaMode::Skb),
        }
    }

    /// Makes the links match the uplinks: detaches from interfaces no
    /// longer configured, attaches (and pins the link) where no link is
    /// pinned yet. A native attach the driver refuses is an error naming
    /// `xdp_mode: generic`; a missing interface is an error naming it.
    pub fn attach(&mut self) -> Result<(), ForwarderError> {
        let (tag, flags) = self.mode();
        let dir = self.pin_dir.clone();
        let wanted: Vec<String> = self
            .uplinks
            .iter()
            .map(|u| format!("link_{tag}_{u}"))
            .collect();
        let entries = std::fs::read_dir(&dir).map_err(pin_err("read", &dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("link_") && !wanted.contains(&name) {
                tracing::info!(link = %name, "detaching XDP from an interface no longer configured");
                std::fs::remove_file(entry.path()).map_err(pin_err("remove", &entry.path()))?;
            }
        }
        for (uplink, pin) in self.uplinks.iter().zip(&wanted) {
            let path = dir.join(pin);
            if path.exists() {
                continue;
            }
            let id = self.prog.attach(uplink, flags).map_err(|source| {
                // A missing interface is no driver's refusal.
                let missing = matches!(source, ProgramError::UnknownInterface { .. });
                match self.mode {
                    XdpMode::Native if !missing => ForwarderError::AttachNative {
                        iface: uplink.clone(),
                        source: Box::new(source),
                    },
                    _ => ForwarderError::Attach {
                        iface: uplink.clone(),
                        mode: tag,
                        source: Box::new(source),
                    },
                }
            })?;
            let link = self
                .prog
                .take_link(id)
                .map_err(|source| ForwarderError::Program {
                    op: "take XDP link",
                    source: Box::new(source),
                })?;
            let fd = FdLink::try_from(link).map_err(|e| ForwarderError::Pin {
                op: "convert link of",
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            fd.pin(&path).map_err(|e| ForwarderError::Pin {
                op: "pin link",
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            tracing::info!(uplink = %uplink, mode = tag, "XDP attached");
        }
        Ok(())
    }

    /// Attaches to `uplink` again (its link was found gone or replaced):
    /// the stale pin is removed first.
    pub fn reattach(&mut self, uplink: &str) -> Result<(), ForwarderError> {
        let (tag, _) = self.mode();
        let pin = self.pin_dir.join(format!("link_{tag}_{uplink}"));
        match std::fs::remove_file(&pin) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ForwarderError::Pin {
                    op: "remove stale link",
                    path: pin,
                    source,
                });
            }
        }
        self.attach()
    }

    /// The kernel's id of the program (what an uplink must run).
    pub fn id(&self) -> Result<u32, ForwarderError> {
        self.prog
            .info()
            .map(|i| i.id())
            .map_err(|source| ForwarderError::Program {
                op: "read program info",
                source: Box::new(source),
            })
    }

    pub fn test_run(
        &self,
        frame: &[u8],
        ingress_ifindex: Option<u32>,
        repeat: u32,
    ) -> Result<(u32, Vec<u8>, u64), ForwarderError> {
        test_run(&self.prog, frame, ingress_ifindex, repeat)
    }
}

/// One `BPF_PROG_TEST_RUN`: (verdict, output frame, mean ns per repeat).
pub(crate) fn test_run(
    prog: &Xdp,
    frame: &[u8],
    ingress_ifindex: Option<u32>,
    repeat: u32,
) -> Result<(u32, Vec<u8>, u64), ForwarderError> {
    let mut out = vec![0u8; frame.len() + 256];
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ingress_ifindex.unwrap_or(0).to_ne_bytes());
    let opts = TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ctx_in: ingress_ifindex.map(|_| &ctx[..]),
        repeat,
        ..Default::default()
    };
    let r = prog
        .test_run(opts)
        .map_err(|source| ForwarderError::Program {
            op: "BPF_PROG_TEST_RUN",
            source: Box::new(source),
        })?;
    out.truncate(r.data_size_out as usize);
    Ok((r.return_value, out, r.duration.as_nanos() as u64))
}
