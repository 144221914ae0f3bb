//! The operating-system user: libpq's default user name, and the home directory that holds
//! `.pgpass`, `.pg_service.conf` and `.postgresql/`.
//!
//! The only unsafe code in the connection module (getpwuid_r) lives here.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The passwd entry of the effective user: name and home directory.
pub(super) fn passwd_entry() -> Option<(String, PathBuf)> {
    // SAFETY: geteuid cannot fail.
    passwd(unsafe { libc::geteuid() })
}

/// The passwd entry of `uid`: name and home directory.
pub fn passwd(uid: u32) -> Option<(String, PathBuf)> {
    let mut size = 4096;
    loop {
        let mut buf = vec![0u8; size];
        // SAFETY: getpwuid_r writes only into `pwd` and `buf`, whose sizes are passed; the
        // strings it points to live in `buf`, which outlives their use.
        unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            if rc == libc::ERANGE && size < 1 << 20 {
                size *= 4;
                continue;
            }
            if rc != 0 || result.is_null() {
                return None;
            }
            let name = CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned();
            let dir = PathBuf::from(OsStr::from_bytes(CStr::from_ptr(pwd.pw_dir).to_bytes()));
            return Some((name, dir));
        }
    }
}

/// The OS user name, as libpq's default user: the effective uid's passwd entry, else $USER.
pub fn os_user() -> Option<String> {
    passwd_entry()
        .map(|(name, _)| name)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
}

/// $HOME, else the passwd entry's home directory.
pub(super) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| passwd_entry().map(|(_, dir)| dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_user_is_the_effective_users_passwd_name() {
        let (name, dir) = passwd_entry().expect("the test runs as a user with a passwd entry");
        assert_eq!(os_user().as_deref(), Some(name.as_str()));
        assert!(dir.is_absolute(), "{}", dir.display());
        assert!(home_dir().is_some());
    }
}
