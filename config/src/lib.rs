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

pub use error::{ConfigError, FieldError};
pub use locate::{Locations, Position};
pub use model::*;
pub use types::{Community, LargeCommunity, MacAddr, format_duration, parse_duration};
pub use validate::{MAX_TABLE_SIZE, MAX_WEIGHT, is_prime, validate};

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text)
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
        path,
        message,
        position: Some(Position { line, column }),
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
