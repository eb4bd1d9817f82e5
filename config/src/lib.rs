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

/// Largest config file edged reads (100,000 VIPs fit in a few MiB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

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
    let locations = Locations::of(text);
    let cfg: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError::Invalid {
        errors: vec![syntax_error(&e, &locations)],
    })?;
    let mut errors = validate(&cfg);
    if errors.is_empty() {
        return Ok(cfg);
    }
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
fn syntax_error(e: &serde_saphyr::Error, locations: &Locations) -> FieldError {
    let message = first_line(&e.to_string());
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
