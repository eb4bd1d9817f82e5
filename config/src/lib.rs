//! edged's configuration: the typed model of `edged.yaml`, its defaults, and
//! validation that names the path (and line and column) of every bad field.
//!
//! ```text
//! text ──serde-saphyr──► Config ──validate()──► Ok(Config) | Err(field errors)
//!   └──── locate ───────── path → line/column ────────┘
//! ```

mod error;
mod locate;
mod model;
mod types;
mod validate;

use std::path::Path;

pub use error::{ConfigError, FieldError, shown};
pub use locate::{Locations, Position};
pub use model::*;
pub use types::{Community, LargeCommunity, MacAddr, format_duration, parse_duration};
pub use validate::{MAX_TABLE_SIZE, MAX_WEIGHT, is_prime, validate};

/// Largest config file edged reads: 100,000 VIPs written in block style,
/// each with two ports and an HTTP check, take about 23 MiB.
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// Most YAML nodes (mappings, sequences, scalars) a config may have. The
/// parser's default (250,000) stops near 13,000 VIPs; 100,000 VIPs as
/// above take about 2.8 million. The file cap bounds the work anyway;
/// aliases, the way a small file grows large, keep the parser's caps.
pub const MAX_YAML_NODES: usize = 16_000_000;

fn yaml_options(max_nodes: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = max_nodes;
    // Every node is one event, and each collection ends with one more.
    budget.max_events = max_nodes.saturating_mul(2);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Reads, parses and validates a config file. Only a regular file of at
/// most [`MAX_CONFIG_BYTES`] is read (a device, FIFO or socket is refused
/// at once, without blocking); a link to one is followed.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read_bounded(path)?;
    parse(&text)
}

/// Reads a regular file of at most [`MAX_CONFIG_BYTES`] as UTF-8.
pub fn read_bounded(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    // O_NONBLOCK: opening a FIFO does not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kind = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_dir() {
            "a directory"
        } else {
            "not a file"
        };
        return Err(ConfigError::NotRegular {
            path: path.to_owned(),
            kind,
        });
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            max: MAX_CONFIG_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read is still cut at the bound.
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            max: MAX_CONFIG_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|e| ConfigError::Invalid {
        errors: vec![FieldError::new(
            "",
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )],
    })
}

/// Parses and validates config text. All problems are reported, each with
/// its field path and position.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_within(text, MAX_YAML_NODES)
}

fn parse_within(text: &str, max_nodes: usize) -> Result<Config, ConfigError> {
    let cfg: Config =
        serde_saphyr::from_str_with_options(text, yaml_options(max_nodes)).map_err(|e| {
            ConfigError::Invalid {
                errors: vec![syntax_error(&e, &Locations::of(text), max_nodes)],
            }
        })?;
    let mut errors = validate(&cfg);
    if errors.is_empty() {
        return Ok(cfg);
    }
    // Positions are looked up only when there is something to report.
    let locations = Locations::of(text);
    for e in &mut errors {
        e.position = position_of(&locations, &e.path);
    }
    errors.sort_by_key(|e| e.position.map(|p| (p.line, p.column)));
    Err(ConfigError::Invalid { errors })
}

/// Where the value at `path` stands; for a field that is missing, where its
/// nearest present parent stands.
fn position_of(locations: &Locations, path: &str) -> Option<Position> {
    let mut p = path;
    loop {
        if let Some(pos) = locations.get(p) {
            return Some(pos);
        }
        p = &p[..p.rfind(['.', '['])?];
    }
}

/// Turns a serde-saphyr error into a field error: its location gives the
/// line and column, and from those the path.
fn syntax_error(e: &serde_saphyr::Error, locations: &Locations, max_nodes: usize) -> FieldError {
    let message = match e.without_snippet() {
        serde_saphyr::Error::Budget { breach, .. } => budget_words(breach, max_nodes),
        _ => first_line(&e.to_string()),
    };
    let Some(loc) = e.location() else {
        return FieldError::new("", message);
    };
    let (line, column) = (loc.line() as usize, loc.column() as usize);
    let path = locations.path_at(line, column).unwrap_or("").to_string();
    FieldError {
        position: Some(Position { line, column }),
        ..FieldError::new(path, message)
    }
}

/// A breach of the parser's budget in words (its own message is a debug
/// form).
fn budget_words(breach: &serde_saphyr::budget::BudgetBreach, max_nodes: usize) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let what = match breach {
        B::Nodes { .. } | B::Events { .. } => format!("has more than {max_nodes} YAML nodes"),
        B::Aliases { .. } | B::AliasAnchorRatio { .. } => "has too many aliases (`*name`)".into(),
        B::Anchors { .. } => "has too many anchors (`&name`)".into(),
        B::Depth { .. } => "is nested too deeply".into(),
        B::RecordedAnchorEvents { .. } | B::RecordedAnchorBytes { .. } => {
            "has anchors that expand too far".into()
        }
        B::MergeKeys { .. } => "has too many merge keys (`<<`)".into(),
        other => format!("is beyond the YAML parser's limits ({other:?})"),
    };
    format!("the file {what}: the YAML parser stops here")
}

/// serde-saphyr's message carries a source snippet after the first line;
/// the field error keeps the message only.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // Drop serde-saphyr's own "line N column M: " prefix; the position is
    // appended in edged's format instead.
    match line.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => {
            rest.to_string()
        }
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_breach_is_said_in_words_at_its_field() {
        let ports: String = (1..200).map(|p| format!("      - port: {p}\n")).collect();
        let y = include_str!("../examples/minimal.yaml").replace("      - port: 80\n", &ports);
        let err = parse_within(&y, 100).unwrap_err().to_string();
        assert!(!err.contains("Nodes {"), "{err}");
        assert!(err.contains("more than 100 YAML nodes"), "{err}");
        assert!(err.contains("vips[0].ports"), "{err}");
        // The same file within the real budget goes through.
        parse(&y).unwrap();
    }
}
