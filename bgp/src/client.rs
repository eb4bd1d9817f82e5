//! Async client for BIRD's control socket: greeting, one command per line, replies.

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::reply::{
    Assembler, ConfigLocation, MAX_LINE, Reply, ReplyError, Step, parse_config_location,
};

/// A control-socket failure.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to BIRD socket {path}: {source}; is BIRD running with `-s {path}`?")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("BIRD socket {path}: I/O error during {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("BIRD socket {path} closed during {op}; BIRD probably died")]
    Closed { path: PathBuf, op: &'static str },
    #[error("BIRD did not answer {op} within {timeout:?}; it may be overloaded or hung")]
    Timeout { op: String, timeout: Duration },
    #[error(
        "BIRD greeted with {code} {text:?} instead of 0001; the socket is not a BIRD control socket"
    )]
    BadGreeting { code: u16, text: String },
    #[error("BIRD reply could not be parsed: {0}")]
    Reply(#[from] ReplyError),
    #[error("command {command:?} contains a newline; one command per line")]
    BadCommand { command: String },
    #[error("BIRD rejected the configuration at {}:{}:{}: {}", .0.file, .0.line, .0.column, .0.message)]
    Config(ConfigLocation),
    #[error("BIRD run-time error {code} on {command:?}: {message}")]
    Runtime {
        command: String,
        code: u16,
        message: String,
    },
    #[error("BIRD parse error {code} on {command:?}: {message}; this is a bug in edged's command")]
    Parse {
        command: String,
        code: u16,
        message: String,
    },
}

/// Deadline of one control-socket command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// One connection to the control socket.
#[derive(Debug)]
pub struct BirdClient {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    timeout: Duration,
    buf: Vec<u8>,
    /// A reply was lost mid-way (timeout, I/O or parse error): reconnect before the next command.
    desync: bool,
}

// === impl BirdClient ===

impl BirdClient {
    /// Connect and wait for the `0001` greeting.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Self, ClientError> {
        let fut = UnixStream::connect(path);
        let stream = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout {
                op: "connect".into(),
                timeout,
            })?
            .map_err(|source| ClientError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        let mut c = Self {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            timeout,
            buf: Vec::new(),
            desync: false,
        };
        let greet = c.read_reply("greeting").await?;
        if greet.code != 1 {
            return Err(ClientError::BadGreeting {
                code: greet.code,
                text: greet.message(),
            });
        }
        Ok(c)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Send one command; return its reply, mapping 8xxx/9xxx to typed errors.
    pub async fn command(&mut self, command: &str) -> Result<Reply, ClientError> {
        let reply = self.raw_command(command).await?;
        check(command, reply)
    }

    /// Send one command; return the reply whatever its code.
    /// After a timeout or a broken reply the stream is out of sync; the next
    /// command reconnects first, so a late reply is never taken for a new one.
    pub async fn raw_command(&mut self, command: &str) -> Result<Reply, ClientError> {
        if command.contains('\n') || command.contains('\r') {
            return Err(ClientError::BadCommand {
                command: command.into(),
            });
        }
        if self.desync {
            tracing::debug!(path = %self.path.display(), "reconnecting to BIRD after a lost reply");
            *self = Self::connect(&self.path, self.timeout).await?;
        }
        let r = self.exchange(command).await;
        if matches!(
            r,
            Err(ClientError::Timeout { .. }
                | ClientError::Io { .. }
                | ClientError::Closed { .. }
                | ClientError::Reply(_))
        ) {
            self.desync = true;
        }
        r
    }

    async fn exchange(&mut self, command: &str) -> Result<Reply, ClientError> {
        let line = format!("{command}\n");
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            op: "write",
            source,
        };
        let w = self.reader.get_mut().write_all(line.as_bytes());
        tokio::time::timeout(self.timeout, w)
            .await
            .map_err(|_| ClientError::Timeout {
                op: command.into(),
                timeout: self.timeout,
            })?
            .map_err(io)?;
        self.read_reply(command).await
    }

    async fn read_reply(&mut self, op: &str) -> Result<Reply, ClientError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.read_reply_inner(op))
            .await
            .map_err(|_| ClientError::Timeout {
                op: op.into(),
                timeout,
            })?
    }

    async fn read_reply_inner(&mut self, op: &str) -> Result<Reply, ClientError> {
        let mut asm = Assembler::new();
        loop {
            self.buf.clear();
            let r = (&mut self.reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.buf)
                .await;
            let n = r.map_err(|source| ClientError::Io {
                path: self.path.clone(),
                op: "read",
                source,
            })?;
            if n == 0 {
                return Err(ClientError::Closed {
                    path: self.path.clone(),
                    op: "read",
                });
            }
            if n > MAX_LINE {
                return Err(ReplyError::TooLong {
                    len: n,
                    max: MAX_LINE,
                }
                .into());
            }
            match asm.push(&self.buf)? {
                Step::Pending => {}
                Step::Async(text) => tracing::debug!(op, text, "BIRD spontaneous output"),
                Step::Done(reply) => return Ok(reply),
            }
        }
    }
}

use tokio::io::AsyncReadExt as _;

/// Map a reply's code to success or a typed error.
pub fn check(command: &str, reply: Reply) -> Result<Reply, ClientError> {
    match reply.code {
        8002 => {
            let msg = reply.message();
            match parse_config_location(&msg) {
                Some(loc) => Err(ClientError::Config(loc)),
                None => Err(ClientError::Runtime {
                    command: command.into(),
                    code: 8002,
                    message: msg,
                }),
            }
        }
        8000..=8999 => Err(ClientError::Runtime {
            command: command.into(),
            code: reply.code,
            message: reply.message(),
        }),
        9000..=9999 => Err(ClientError::Parse {
            command: command.into(),
            code: reply.code,
            message: reply.message(),
        }),
        _ => Ok(reply),
    }
}
