//! Files edged writes, written so that nobody else can choose where the
//! bytes go.
//!
//! ```text
//! PrivateDir::open(path)  ── open(O_DIRECTORY | O_NOFOLLOW) once; refused when
//!                            others (or a group other than root's) may write it
//!   .write(name, bytes)   ── openat(.tmp, O_CREAT | O_EXCL | O_NOFOLLOW) ── write ── fsync
//!                            ── renameat(.tmp → name) ── fsync(dir)
//! ```
//! A crash leaves the old file or the new one, never a mix; a link planted
//! at the name or at the temporary name is replaced, not followed; a full
//! disk is an error that says so (`No space left on device`).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};

/// What went wrong with a file or directory edged writes.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An OS call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What edged was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error (ENOSPC reads "No space left on device").
        source: std::io::Error,
    },
    /// The directory may be written by others, who could then replace what
    /// edged writes (BIRD's config, the operator's drains).
    #[error(
        "{path} is writable by others (mode {mode:o}, uid {uid}, gid {gid}); \
         make it owned by root and not group- or world-writable (chmod 0750)"
    )]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
}

impl FileError {
    /// Whether the cause is a full disk (ENOSPC) or quota (EDQUOT).
    pub fn is_no_space(&self) -> bool {
        matches!(self, FileError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(e) if e == nix::libc::ENOSPC || e == nix::libc::EDQUOT))
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> FileError + 'a {
    move |e| FileError::Io {
        op,
        path: path.to_owned(),
        source: std::io::Error::from(e),
    }
}

/// A directory edged owns, opened once; files in it are written with
/// [`PrivateDir::write`].
#[derive(Debug)]
pub struct PrivateDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl PrivateDir {
    /// Creates `path` (mode 0750) if missing, opens it without following a
    /// link, and refuses it when anyone but its owner (and root's group)
    /// may write it, or when it is not owned by the caller.
    pub fn open(path: &Path) -> Result<PrivateDir, FileError> {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(path)
        {
            Ok(()) => {}
            Err(source) => {
                return Err(FileError::Io {
                    op: "create",
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let fd = nix::fcntl::open(
            path,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(io("open", path))?;
        let dir = PrivateDir {
            fd,
            path: path.to_owned(),
        };
        dir.check()?;
        Ok(dir)
    }

    /// Refuses the directory when others may write it.
    fn check(&self) -> Result<(), FileError> {
        let st = nix::sys::stat::fstat(&self.fd).map_err(io("stat", &self.path))?;
        let (mode, uid, gid) = (st.st_mode & 0o7777, st.st_uid, st.st_gid);
        let me = nix::unistd::geteuid().as_raw();
        let world = mode & 0o002 != 0;
        let group = mode & 0o020 != 0 && gid != 0;
        if world || group || uid != me {
            return Err(FileError::Unsafe {
                path: self.path.clone(),
                mode,
                uid,
                gid,
            });
        }
        Ok(())
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory, created and checked the same way.
    pub fn subdir(&self, name: &str) -> Result<PrivateDir, FileError> {
        PrivateDir::open(&self.path.join(name))
    }

    /// Writes `bytes` as `name` (mode `mode`): a new temporary file beside
    /// it (never an existing one, never through a link), fsynced, renamed
    /// over `name`, then the directory fsynced.
    pub fn write(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), FileError> {
        let tmp = format!(".{name}.tmp");
        let tmp_path = self.path.join(&tmp);
        let path = self.path.join(name);
        // A stale temporary (a crash, or a planted link) is removed, not followed.
        match unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(io("remove stale", &tmp_path)(e)),
        }
        let fd = openat(
            &self.fd,
            tmp.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(io("create", &tmp_path))?;
        let mut f = std::fs::File::from(fd);
        let written = f
            .write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|source| FileError::Io {
                op: "write",
                path: tmp_path.clone(),
                source,
            });
        if let Err(e) = written {
            let _ = unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        renameat(&self.fd, tmp.as_str(), &self.fd, name).map_err(io("rename", &path))?;
        nix::unistd::fsync(&self.fd).map_err(io("fsync", &self.path))?;
        Ok(())
    }

    /// Renames `from` to `to` within the directory (a link at `to` is
    /// replaced), then fsyncs the directory.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), FileError> {
        renameat(&self.fd, from, &self.fd, to).map_err(io("rename", &self.path.join(to)))?;
        nix::unistd::fsync(&self.fd).map_err(io("fsync", &self.path))
    }

    /// Opens a directory edged writes into but does not own (an operator's
    /// BIRD include directory): writes are as safe, ownership is not checked.
    pub fn open_shared(path: &Path) -> Result<PrivateDir, FileError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(io("open", path))?;
        Ok(PrivateDir {
            fd,
            path: path.to_owned(),
        })
    }

    /// Removes `name` if it is there (a link is removed, not followed).
    pub fn remove(&self, name: &str) -> Result<(), FileError> {
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::Error::ENOENT) => Ok(()),
            Err(e) => Err(io("remove", &self.path.join(name))(e)),
        }
    }

    /// Reads `name` (not through a link); `None` when it does not exist.
    pub fn read(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>, FileError> {
        use std::io::Read;
        let path = self.path.join(name);
        let fd = match openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) => return Ok(None),
            Err(e) => return Err(io("open", &path)(e)),
        };
        let f = std::fs::File::from(fd);
        let meta = f.metadata().map_err(|source| FileError::Io {
            op: "stat",
            path: path.clone(),
            source,
        })?;
        if !meta.file_type().is_file() || meta.size() > max {
            return Err(FileError::Io {
                op: "read",
                path,
                source: std::io::Error::other(format!("not a regular file of at most {max} bytes")),
            });
        }
        let mut out = Vec::new();
        f.take(max)
            .read_to_end(&mut out)
            .map_err(|source| FileError::Io {
                op: "read",
                path,
                source,
            })?;
        Ok(Some(out))
    }

    /// Whether `name` exists (a link counts, and is not followed).
    pub fn exists(&self, name: &str) -> bool {
        nix::sys::stat::fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// The raw descriptor, for diagnostics.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("edged-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn writes_replace_links_instead_of_following_them() {
        let root = temp("links");
        let dir = PrivateDir::open(&root).unwrap();
        let victim = root.join("victim");
        std::fs::write(&victim, "victim\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        for name in ["conf", ".conf.tmp"] {
            std::os::unix::fs::symlink(&victim, root.join(name)).unwrap();
        }
        dir.write("conf", b"new\n", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim\n");
        assert_eq!(
            std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let meta = std::fs::symlink_metadata(root.join("conf")).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(root.join("conf")).unwrap(), "new\n");
        assert!(!dir.exists(".conf.tmp"));
        // Reading does not follow a link either.
        std::os::unix::fs::symlink(&victim, root.join("link")).unwrap();
        assert!(dir.read("link", 1024).is_err());
        assert_eq!(dir.read("conf", 1024).unwrap().unwrap(), b"new\n");
        assert_eq!(dir.read("absent", 1024).unwrap(), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let root = temp("unsafe");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = PrivateDir::open(&root).unwrap_err();
        assert!(e.to_string().contains("writable by others"), "{e}");
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o750)).unwrap();
        PrivateDir::open(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}
