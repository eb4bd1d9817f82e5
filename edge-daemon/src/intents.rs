//! Operator intents (drains, maintenance), persisted atomically in the state
//! directory and restored at start before anything is announced.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use edged_files::PrivateDir;

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
    /// I/O on the file or its directory (a full disk says so).
    #[error(transparent)]
    File(#[from] edged_files::FileError),
    /// The file exists but cannot be understood; edged refuses to start
    /// rather than forget a drain.
    #[error("{path} is not a valid intents file ({source}); fix or remove it")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Largest intents file edged reads.
const MAX_BYTES: u64 = 16 << 20;

impl Intents {
    /// Reads the intents in the state directory; none are in force if the
    /// file does not exist.
    pub fn load(dir: &PrivateDir) -> Result<Intents, IntentsError> {
        let path = dir.path().join(FILE_NAME);
        match dir.read(FILE_NAME, MAX_BYTES) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map_err(|source| IntentsError::Corrupt { path, source }),
            Ok(None) => Ok(Intents::default()),
            Err(e) => Err(IntentsError::File(e)),
        }
    }

    /// Writes the intents atomically, beside the file and never through a
    /// link: temp file, fsync, rename, fsync of the directory. A crash
    /// leaves either the old or the new file.
    pub fn save(&self, dir: &PrivateDir) -> Result<(), IntentsError> {
        let json = serde_json::to_vec_pretty(self).expect("intents always serialize");
        dir.write(FILE_NAME, &json, 0o600)
            .map_err(IntentsError::File)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_missing_is_empty() {
        let path = std::env::temp_dir().join(format!("edged-intents-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let dir = PrivateDir::open(&path).unwrap();
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
        std::fs::write(path.join(FILE_NAME), b"{not json").unwrap();
        let err = Intents::load(&dir).unwrap_err().to_string();
        assert!(err.contains("not a valid intents file"), "{err}");
        std::fs::remove_dir_all(&path).unwrap();
    }
}
