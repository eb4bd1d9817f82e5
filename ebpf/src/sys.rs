//! Small system calls: interface index and MAC in the calling thread's
//! network namespace (not /sys, which shows the namespace sysfs was mounted
//! in), and the bpffs check.

use std::ffi::CString;
use std::io;
use std::path::Path;

use crate::ForwarderError;

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// Index of `ifname` in this thread's network namespace.
pub fn ifindex(ifname: &str) -> Result<u32, ForwarderError> {
    let err = |source| ForwarderError::Interface {
        ifname: ifname.to_string(),
        source,
    };
    let c = CString::new(ifname).map_err(|_| err(io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(idx)
}

/// Hardware address of `ifname` in this thread's network namespace.
pub fn mac(ifname: &str) -> Result<[u8; 6], ForwarderError> {
    let err = |source| ForwarderError::Interface {
        ifname: ifname.to_string(),
        source,
    };
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(err(io::ErrorKind::InvalidInput.into()));
    }
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills `req`, which outlives the call.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    let e = io::Error::last_os_error();
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return Err(err(e));
    }
    // SAFETY: the kernel filled the hwaddr member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut out = [0u8; 6];
    for (d, s) in out.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(out)
}

/// Checks that `dir`'s parent chain is on bpffs; mounts /sys/fs/bpf if it is
/// not mounted yet.
pub fn ensure_bpffs(dir: &Path) -> Result<(), ForwarderError> {
    let root = Path::new("/sys/fs/bpf");
    if dir.starts_with(root) && !is_bpffs(root) {
        let src = CString::new("bpf").expect("no NUL");
        let target = CString::new("/sys/fs/bpf").expect("no NUL");
        // SAFETY: valid C strings; no data argument.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                src.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(ForwarderError::Bpffs {
                path: root.into(),
                source: io::Error::last_os_error(),
            });
        }
        tracing::info!("mounted bpffs at /sys/fs/bpf");
    }
    let parent = dir.parent().unwrap_or(root);
    if !is_bpffs(parent) {
        return Err(ForwarderError::Bpffs {
            path: parent.into(),
            source: io::Error::other("not a bpf filesystem"),
        });
    }
    Ok(())
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills `st`, which is plain old data.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}
