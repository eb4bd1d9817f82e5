//! Configuration errors: each names the path of the bad field and, when the
//! value came from a file, its line and column.

use std::fmt;
use std::path::PathBuf;

use crate::locate::Position;

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `vips[2].services[0].check.interval`.
    pub path: String,
    /// What is wrong and, where it helps, what to write instead.
    pub message: String,
    /// Where the value stands in the file.
    pub position: Option<Position>,
}

/// Longest message kept whole; a longer one (a value echoed by the YAML
/// parser) is cut.
const MAX_MESSAGE: usize = 240;

/// Longest value echoed in a message.
const MAX_SHOWN: usize = 80;

/// A value as a message shows it: at most 80 characters, then `…` and its
/// length, so a 50 MB value never reaches a log, a reply or a terminal.
pub fn shown(value: &str) -> String {
    cut(value, MAX_SHOWN)
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => format!("{}… ({} bytes in all)", &s[..end], s.len()),
    }
}

impl FieldError {
    /// An error at `path`; the message is cut to a bounded length.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        FieldError {
            path: path.into(),
            message: cut(&message, MAX_MESSAGE),
            position: None,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)?;
        if let Some(p) = self.position {
            write!(f, " (line {}, column {})", p.line, p.column)?;
        }
        Ok(())
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path is not a regular file (a device, FIFO, socket, directory).
    #[error("cannot read config {path}: {kind}, not a regular file")]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The file is larger than edged reads.
    #[error("cannot read config {path}: larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        max: u64,
    },
    /// The file was read but is not a valid configuration; one entry per field.
    #[error("{}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Every problem found, in document order where known.
        errors: Vec<FieldError>,
    },
}

impl ConfigError {
    /// The field errors (empty for a read error).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ConfigError::Invalid { errors } => errors,
            _ => &[],
        }
    }
}
