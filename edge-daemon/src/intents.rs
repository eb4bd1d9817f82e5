//! Operator intents (drains, maintenance), persisted atomically in the state
//! directory and restored at start before anything is announced.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// File name of the intents inside the state directory.
pub const FILE_NAME: &str = "intents.json";

/// Since when an intent holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Since {
    /// When the operator asked for it.
    pub since: SystemTime,
}

/// What operators asked for, beyond the config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intents {
    /// Node-wide maintenance: every VIP is drained.
    #[serde(default)]
    pub maintenance: Option<Since>,
    /// Drained VIPs, by name.
    #[serde(default)]
    pub drained: BTreeMap<String, Since>,
    /// Runtime proxy weights that override the config (a canary at 10 %,
    /// then forward or back), by proxy name.
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
}

/// Errors reading or writing the intents file.
#[derive(Debug, thiserror::Error)]
pub enum IntentsError {
    /// I/O on the file or its directory.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file exists but cannot be understood; edged refuses to start
    /// rather than forget a drain.
    #[error("{path} is not a valid intents file ({source}); fix or remove it")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> IntentsError + 'a {
    move |source| IntentsError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

impl Intents {
    /// Reads the intents in `state_dir`; none are in force if the file does
    /// not exist.
    pub fn load(state_dir: &Path) -> Result<Intents, IntentsError> {
        let path = state_dir.join(FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| IntentsError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Intents::default()),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// Writes the intents atomically: temp file, fsync, rename, fsync of
    /// the directory. A crash leaves either the old or the new file.
    pub fn save(&self, state_dir: &Path) -> Result<(), IntentsError> {
        let path = state_dir.join(FILE_NAME);
        let tmp = state_dir.join(format!(".{FILE_NAME}.tmp"));
        let json = serde_json::to_vec_pretty(self).expect("intents always serialize");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        f.write_all(&json).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io("rename", &path))?;
        File::open(state_dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync", state_dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_missing_is_empty() {
        let dir = std::env::temp_dir().join(format!("edged-intents-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(Intents::load(&dir).unwrap(), Intents::default());
        let mut i = Intents::default();
        i.drained.insert(
            "web".into(),
            Since {
                since: SystemTime::UNIX_EPOCH,
            },
        );
        i.maintenance = Some(Since {
            since: SystemTime::now(),
        });
        i.save(&dir).unwrap();
        assert_eq!(Intents::load(&dir).unwrap(), i);
        fs::write(dir.join(FILE_NAME), b"{not json").unwrap();
        let err = Intents::load(&dir).unwrap_err().to_string();
        assert!(err.contains("not a valid intents file"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
