//! Errors of the speaker.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::client::ClientError;
use crate::reply::ConfigLocation;
use crate::spec::SpecError;

/// Everything [`crate::Speaker`] can fail with.
#[derive(Debug, Error)]
pub enum BgpError {
    #[error("invalid BGP settings: {0}")]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(
        "peer {peer}: cannot read password file {path}: {source}; create it or drop password_file"
    )]
    PasswordFile {
        peer: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "peer {peer}: password in {path} is empty or holds a quote or control character; BIRD cannot express it"
    )]
    BadPassword { peer: String, path: PathBuf },
    #[error("cannot write {path}: {source}; check the state directory exists and is writable")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "BIRD rejected the generated configuration at {}:{}:{}: {}; the previous configuration stays active",
        .0.file, .0.line, .0.column, .0.message
    )]
    ConfigRejected(ConfigLocation),
    #[error("BIRD's check of {path} failed: {output}; the previous configuration stays active")]
    CheckFailed { path: PathBuf, output: String },
    #[error("cannot run {binary}: {source}; install bird2 or set bird_binary")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("`setpriv` (util-linux) is not in PATH; it is needed to tie BIRD's life to edged's")]
    SetprivMissing,
    #[error("BIRD did not open its socket {socket} within {waited:?}; see its log on stderr")]
    StartTimeout { socket: PathBuf, waited: Duration },
    #[error("BIRD exited during start with {status}; see its log on stderr")]
    ChildExited { status: String },
    #[error("unknown VIP {vip:?}; add it to the configuration and reconfigure first")]
    UnknownVip { vip: String },
    #[error("BIRD answered {command:?} with unexpected code {code}: {message}")]
    Unexpected {
        command: String,
        code: u16,
        message: String,
    },
}
