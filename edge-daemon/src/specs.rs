//! The one validation: a config in, every component's spec out (forwarder,
//! BGP, checks), with each limit a component enforces checked here first,
//! under the path of the field to change. `edged check`, the start and
//! every reload run this same function, so a file `edged check` accepts is
//! one the daemon accepts, and the other way round.
//!
//! Host facts (an uplink, a group, a file that must exist on this machine)
//! are checked by [`host_facts`] on top, in the calling thread's network
//! namespace; `edged check --no-host-checks` skips them for a file checked
//! on another machine.

use std::path::Path;

use edged_bgp::BgpSpec;
use edged_config::{CheckKind as CfgKind, Config, ConfigError, Delivery, FieldError, shown};
use edged_ebpf::ForwarderSpec;
use edged_health::{CheckKey, CheckSpec};

/// Every component's input, derived from one config.
#[derive(Clone, Debug, PartialEq)]
pub struct Specs {
    /// The data plane (`None` without a `forwarder:` section).
    pub forwarder: Option<ForwarderSpec>,
    /// BIRD's.
    pub bgp: BgpSpec,
    /// One per (VIP, service, proxy).
    pub checks: Vec<(CheckKey, CheckSpec)>,
}

/// Whether host facts are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostChecks {
    /// Check them (start, reload, `edged check`).
    Yes,
    /// Skip them (`edged check --no-host-checks`).
    No,
}

/// Reads (bounded), parses and validates `path`, then derives the specs.
pub fn load(path: &Path, host: HostChecks) -> Result<(Config, Specs), ConfigError> {
    let text = edged_config::read_bounded(path)?;
    let cfg = edged_config::parse(&text)?;
    let specs = specs(&cfg).map_err(|errors| ConfigError::Invalid { errors })?;
    if host == HostChecks::Yes {
        let errors = host_facts(&cfg);
        if !errors.is_empty() {
            return Err(ConfigError::Invalid { errors });
        }
    }
    Ok((cfg, specs))
}

/// The specs of a config, or every field that a component would refuse.
pub fn specs(cfg: &Config) -> Result<Specs, Vec<FieldError>> {
    let mut errors = Vec::new();
    let forwarder = crate::effects::xdp::spec(cfg);
    if let Some(f) = &forwarder {
        data_plane_limits(cfg, f, &mut errors);
    }
    let bgp = crate::effects::bgp::spec(cfg);
    if let Err(e) = bgp.validate() {
        errors.push(FieldError::new("bgp", e.to_string()));
    }
    let checks = crate::health::checks(cfg);
    if errors.is_empty() {
        Ok(Specs {
            forwarder,
            bgp,
            checks,
        })
    } else {
        Err(errors)
    }
}

/// What the XDP loader and its maps take.
fn data_plane_limits(cfg: &Config, f: &ForwarderSpec, errors: &mut Vec<FieldError>) {
    use edged_ebpf::abi::PEER_SLOT_BASE;
    if let Err(edged_ebpf::ForwarderError::InvalidSpec { field, reason, .. }) =
        edged_ebpf::validate_spec(f)
    {
        errors.push(FieldError::new(
            format!("forwarder.{field}"),
            format!("{reason} (the XDP loader's limit)"),
        ));
    }
    if cfg.vips.len() > f.max_vips as usize {
        errors.push(FieldError::new(
            "vips",
            format!(
                "{} VIPs, but forwarder.max_vips is {}",
                cfg.vips.len(),
                f.max_vips
            ),
        ));
    }
    let keys: usize = cfg.vips.iter().map(|v| v.ports.len() + 1).sum();
    if keys > f.max_vip_ports as usize {
        errors.push(FieldError::new(
            "vips",
            format!(
                "{keys} VIP port entries (ports + 1 per VIP), but forwarder.max_vip_ports is {}",
                f.max_vip_ports
            ),
        ));
    }
    if cfg.proxies.len() > PEER_SLOT_BASE as usize {
        errors.push(FieldError::new(
            "proxies",
            format!(
                "{} proxies, but the data plane holds at most {PEER_SLOT_BASE}",
                cfg.proxies.len()
            ),
        ));
    }
}

/// Facts of this machine the config relies on.
pub fn host_facts(cfg: &Config) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let iface = |errors: &mut Vec<FieldError>, path: String, name: &str| {
        if nix::net::if_::if_nametoindex(name).is_err() {
            errors.push(FieldError::new(
                path,
                format!("no interface `{}` in this network namespace", shown(name)),
            ));
        }
    };
    if let Some(f) = &cfg.forwarder {
        for (i, up) in f.uplinks.iter().enumerate() {
            iface(&mut errors, format!("forwarder.uplinks[{i}]"), up);
        }
        for (i, p) in cfg.proxies.iter().enumerate() {
            if let (Delivery::L2, Some(ifname)) = (p.delivery, &p.interface) {
                iface(&mut errors, format!("proxies[{i}].interface"), ifname);
            }
        }
    }
    if let Some(ifname) = &cfg.node.vip_interface {
        iface(&mut errors, "node.vip_interface".into(), ifname);
    }
    if let Some(g) = &cfg.node.control_group
        && !matches!(nix::unistd::Group::from_name(g), Ok(Some(_)))
    {
        errors.push(FieldError::new(
            "node.control_group",
            format!(
                "no group `{}` on this host (create it, or leave the field out for root only)",
                shown(g)
            ),
        ));
    }
    let file = |errors: &mut Vec<FieldError>, path: String, f: &Path, exec: bool| {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(f) {
            Ok(m) if m.is_file() && (!exec || m.permissions().mode() & 0o111 != 0) => {}
            Ok(_) if exec => errors.push(FieldError::new(
                path,
                format!(
                    "{} is not an executable file",
                    shown(&f.display().to_string())
                ),
            )),
            Ok(_) => errors.push(FieldError::new(
                path,
                format!("{} is not a regular file", shown(&f.display().to_string())),
            )),
            Err(e) => errors.push(FieldError::new(
                path,
                format!("{}: {e}", shown(&f.display().to_string())),
            )),
        }
    };
    if cfg.bgp.mode == edged_config::BirdMode::Managed {
        file(
            &mut errors,
            "bgp.bird_binary".into(),
            &cfg.bgp.bird_binary,
            true,
        );
    }
    if let Some(k) = cfg
        .forwarder
        .as_ref()
        .and_then(|f| f.handoff.as_ref())
        .and_then(|h| h.key_file.as_ref())
        && let Err(e) = crate::flowshare::read_key(k)
    {
        errors.push(FieldError::new("forwarder.handoff.key_file", shown(&e)));
    }
    for (i, p) in cfg.bgp.peers.iter().enumerate() {
        if let Some(pw) = &p.password_file {
            file(
                &mut errors,
                format!("bgp.peers[{i}].password_file"),
                pw,
                false,
            );
        }
    }
    for (i, v) in cfg.vips.iter().enumerate() {
        for (j, s) in v.services.iter().enumerate() {
            let at = |f: &str| format!("vips[{i}].services[{j}].check.{f}");
            if let Some(ca) = &s.check.ca_file {
                file(&mut errors, at("ca_file"), ca, false);
            }
            if s.check.kind == CfgKind::Exec
                && let Some(prog) = s.check.command.as_ref().and_then(|c| c.first())
            {
                file(&mut errors, at("command"), Path::new(prog), true);
            }
        }
    }
    errors
}
