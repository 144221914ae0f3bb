//! Opening the `--audit-log` file the way careful root tools open theirs (Postfix's
//! `safe_open`, OpenSSH's checks of the files it trusts): pgkick often runs as root, and the
//! path it is given may be in a directory other users can write.
//!
//! - The directory is reached from `/` one component at a time (OpenSSH's `safe_path`), each
//!   opened relative to the one before with `O_NOFOLLOW` and checked by its descriptor: owned
//!   by the user running pgkick or by root, and not writable by group or others unless it has
//!   the sticky bit (like /tmp: others may not remove or rename what is not theirs). Whoever
//!   may replace any directory on the way could send the log elsewhere. A symbolic link on the
//!   way is followed only when it belongs to root or to that user (like Debian's `/var/run ->
//!   /run`); one planted by another user is refused (in a sticky directory they may create
//!   one). A relative path starts from the working directory, as `getcwd` names it. The file
//!   is then opened relative to the last directory's descriptor, so nothing renamed on the way
//!   after the check changes what is opened.
//! - The file is opened `O_NOFOLLOW` (a symlink at the path is refused, never followed),
//!   `O_NONBLOCK` (a FIFO without a reader fails at once instead of blocking pgkick before it
//!   acts; with a reader the open returns and the check below refuses it) and `O_NOCTTY`.
//! - A missing file is created `O_CREAT|O_EXCL` with mode 0600: the creation fails if anything,
//!   a dangling symlink included, appeared at the path meanwhile. When a concurrent pgkick
//!   created it first, it is opened again (a few times at most).
//! - What was opened is checked by `fstat` on the descriptor, never by the path again: a
//!   regular file, owned by the user running pgkick, with one link (another name could be a
//!   file a planted hard link points at), not writable by group or others and not readable by
//!   others (the records hold the query texts of the sessions acted on); 0640 is fine.
//!
//! A refusal is one line naming the path, what is wrong and the fix (`chmod 600 …`); the caller
//! opens the log before connecting, so nothing was done. The decisions are pure functions of
//! the mode, owner and link count ([`dir_refusal`], [`file_refusal`]).

use std::collections::VecDeque;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, Result};

/// How the file is opened, whether it exists or is created.
const FLAGS: libc::c_int = libc::O_WRONLY
    | libc::O_APPEND
    | libc::O_NOFOLLOW
    | libc::O_NONBLOCK
    | libc::O_NOCTTY
    | libc::O_CLOEXEC;

/// How often a missing file is created and, when another run created it first, opened again.
const ATTEMPTS: usize = 4;

/// Opens `path` to append audit records, or says in one line why not and how to fix it.
pub fn open_append(path: &Path) -> Result<File> {
    let fail = |why: String| {
        anyhow!(
            "cannot open the audit log {}: {why}; nothing was done",
            path.display()
        )
    };
    let me = User::running();
    let Some((dir_path, name)) = split(path) else {
        return Err(fail(Refusal::NamesDirectory.explain(path, path, &me)));
    };
    let explain = |refusal: Refusal| fail(refusal.explain(path, dir_path, &me));
    let name =
        CString::new(name.as_bytes()).map_err(|_| fail("the path contains a NUL byte".into()))?;
    let dir = walk_to(dir_path, me.uid).map_err(|e| match e {
        Walk::Refused(refusal, at) => fail(refusal.explain(path, &at, &me)),
        Walk::Failed(at, e) => fail(format!("its directory {}: {e}", at.display())),
    })?;
    let fd = open_or_create(dir.as_fd(), &name).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => explain(Refusal::Symlink),
        Some(libc::EISDIR) => explain(Refusal::NotRegular(libc::S_IFDIR)),
        // A FIFO without a reader, a socket, a device without its driver.
        Some(libc::ENXIO) => match mode_at(dir.as_fd(), &name) {
            Some(mode) if mode & libc::S_IFMT != libc::S_IFREG => {
                explain(Refusal::NotRegular(mode & libc::S_IFMT))
            }
            _ => fail(e.to_string()),
        },
        _ => fail(e.to_string()),
    })?;
    let file = File::from(fd);
    let facts = file.metadata().map_err(|e| fail(e.to_string()))?;
    if let Some(refusal) = file_refusal(Facts::of(&facts), me.uid) {
        return Err(explain(refusal));
    }
    clear_nonblock(file.as_fd()).map_err(|e| fail(e.to_string()))?;
    Ok(file)
}

/// The directory to open and the name in it; None when the path names a directory (it ends
/// in `/`, `.` or `..`). Split on the last `/` of the path as given, so `Path`'s
/// normalisation never turns `dir/.` into a file named `dir`.
fn split(path: &Path) -> Option<(&Path, &OsStr)> {
    let bytes = path.as_os_str().as_bytes();
    let (dir, name): (&[u8], &[u8]) = match bytes.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &bytes[1..]),
        Some(slash) => (&bytes[..slash], &bytes[slash + 1..]),
        None => (b".", bytes),
    };
    if matches!(name, b"" | b"." | b"..") {
        return None;
    }
    Some((Path::new(OsStr::from_bytes(dir)), OsStr::from_bytes(name)))
}

/// How each directory on the way is opened: for its descriptor only (no read permission
/// needed, as a path lookup needs none), never through a symlink.
#[cfg(any(target_os = "linux", target_os = "android"))]
const DIR_FLAGS: libc::c_int =
    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DIR_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// At most this many symbolic links are followed on the way (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Why the walk to the directory stopped: a refusal at the path named (the directory or the
/// link as reached, symlinks resolved), or an error there.
#[derive(Debug)]
enum Walk {
    Refused(Refusal, PathBuf),
    Failed(PathBuf, io::Error),
}

/// Opens the directory `dir` from `/`, a component at a time, checking each directory reached
/// and each symbolic link followed (see the module documentation); its descriptor.
fn walk_to(dir: &Path, me: u32) -> Result<OwnedFd, Walk> {
    let start = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|e| Walk::Failed(dir.to_path_buf(), e))?;
        cwd.join(dir)
    };
    let mut todo: VecDeque<OsString> = VecDeque::new();
    push_front(&mut todo, &start);
    let mut at = PathBuf::from("/");
    let mut cur = open_root(me)?;
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        let cname = CString::new(name.as_bytes())
            .map_err(|_| Walk::Failed(at.clone(), io::ErrorKind::InvalidInput.into()))?;
        let next = match openat(cur.as_fd(), &cname, DIR_FLAGS, 0) {
            Ok(next) => next,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                let link_at = at.join(&name);
                let Some(link) = stat_at(cur.as_fd(), &cname)
                    .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
                else {
                    return Err(Walk::Failed(link_at, e));
                };
                if let Some(refusal) = link_refusal(link.st_uid, me) {
                    return Err(Walk::Refused(refusal, link_at));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(Walk::Failed(
                        link_at,
                        io::Error::from_raw_os_error(libc::ELOOP),
                    ));
                }
                let target = read_link_at(cur.as_fd(), &cname)
                    .map_err(|e| Walk::Failed(link_at.clone(), e))?;
                if target.is_absolute() {
                    cur = open_root(me)?;
                    at = PathBuf::from("/");
                }
                push_front(&mut todo, &target);
                continue;
            }
            Err(e) => return Err(Walk::Failed(at.join(&name), e)),
        };
        if name == ".." {
            at.pop();
        } else {
            at.push(&name);
        }
        check_dir(&next, &at, todo.is_empty(), me)?;
        cur = next;
    }
    Ok(cur)
}

/// `/`, checked like every directory after it.
fn open_root(me: u32) -> Result<OwnedFd, Walk> {
    let root = Path::new("/");
    let fd: OwnedFd = OpenOptions::new()
        .read(true)
        .custom_flags(DIR_FLAGS)
        .open(root)
        .map_err(|e| Walk::Failed(root.to_path_buf(), e))?
        .into();
    check_dir(&fd, root, false, me)?;
    Ok(fd)
}

/// The directory check on what was opened as the directory at `at` (`last`: the file's own).
fn check_dir(fd: &OwnedFd, at: &Path, last: bool, me: u32) -> Result<(), Walk> {
    let facts = File::from(
        fd.try_clone()
            .map_err(|e| Walk::Failed(at.to_path_buf(), e))?,
    )
    .metadata()
    .map_err(|e| Walk::Failed(at.to_path_buf(), e))?;
    match dir_refusal(Facts::of(&facts), me) {
        Some(refusal) => Err(Walk::Refused(refusal.on_the_way(!last), at.to_path_buf())),
        None => Ok(()),
    }
}

/// Puts the components of `path` before those left to walk (`.` dropped, `..` kept).
fn push_front(todo: &mut VecDeque<OsString>, path: &Path) {
    for part in path.components().rev() {
        match part {
            Component::Normal(name) => todo.push_front(name.to_os_string()),
            Component::ParentDir => todo.push_front("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// What the symbolic link `name` in `dir` points at.
fn read_link_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: readlinkat writes at most buf.len() bytes into buf and reads only the
    // NUL-terminated name.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// The open: the file as it is, else created; when a concurrent run created it between the
/// two, opened again.
fn open_or_create(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    for _ in 0..ATTEMPTS {
        match openat(dir, name, FLAGS, 0) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            opened => return opened,
        }
        match openat(dir, name, FLAGS | libc::O_CREAT | libc::O_EXCL, 0o600) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            created => return created,
        }
    }
    Err(io::Error::other(
        "it was removed and created again, over and over, while pgkick opened it",
    ))
}

fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: the directory descriptor is open for the call and the name is NUL-terminated;
    // openat reads nothing else (the mode is passed as the variadic C unsigned int).
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags,
            libc::c_uint::from(mode),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The mode of `name` in `dir` itself (not what a symlink points at), to say what it is.
fn mode_at(dir: BorrowedFd<'_>, name: &CStr) -> Option<u32> {
    stat_at(dir, name).map(|st| st.st_mode)
}

/// `name` in `dir` itself, not what a symlink points at.
fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> Option<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstatat writes at most one `stat` into `st`, and only reads the NUL-terminated
    // name; `st` is read only when it returned 0.
    unsafe {
        let rc = libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        );
        (rc == 0).then(|| st.assume_init())
    }
}

/// Writes block again once the file is known to be a regular one.
fn clear_nonblock(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL read and set the flags of a descriptor that is open.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What the checks look at, from `fstat`.
#[derive(Debug, Clone, Copy)]
struct Facts {
    /// The file type and permission bits (`st_mode`).
    mode: u32,
    uid: u32,
    nlink: u64,
}

impl Facts {
    fn of(meta: &Metadata) -> Facts {
        Facts {
            mode: meta.mode(),
            uid: meta.uid(),
            nlink: meta.nlink(),
        }
    }
}

/// Why an audit log is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The path ends in `/`, `.` or `..`.
    NamesDirectory,
    /// The directory belongs to another user, who may remove or replace what is in it.
    /// `on_the_way`: a directory on the way to the file's, not the file's own.
    DirOwnedBy {
        uid: u32,
        on_the_way: bool,
    },
    /// The directory is writable by group or others and has no sticky bit.
    DirWritable {
        mode: u32,
        on_the_way: bool,
    },
    /// A symbolic link on the way belongs to another user, who may aim it anywhere.
    LinkOwnedBy(u32),
    Symlink,
    /// Not a regular file: the `S_IFMT` bits of what is there.
    NotRegular(u32),
    OwnedBy(u32),
    /// Writable by group or others, or readable by others.
    Exposed {
        mode: u32,
    },
    /// Not exactly one link: the number it has.
    Links(u64),
}

/// The directory check: owned by `me` or root, and not writable by group or others unless
/// sticky.
fn dir_refusal(dir: Facts, me: u32) -> Option<Refusal> {
    if dir.uid != me && dir.uid != 0 {
        return Some(Refusal::DirOwnedBy {
            uid: dir.uid,
            on_the_way: false,
        });
    }
    if dir.mode & 0o022 != 0 && dir.mode & libc::S_ISVTX == 0 {
        return Some(Refusal::DirWritable {
            mode: dir.mode,
            on_the_way: false,
        });
    }
    None
}

/// The check of a symbolic link on the way: owned by `me` or root.
fn link_refusal(uid: u32, me: u32) -> Option<Refusal> {
    (uid != me && uid != 0).then_some(Refusal::LinkOwnedBy(uid))
}

/// The file check, on what was opened: a regular file of `me`'s with one link, not writable
/// by group or others and not readable by others.
fn file_refusal(file: Facts, me: u32) -> Option<Refusal> {
    if file.mode & libc::S_IFMT != libc::S_IFREG {
        return Some(Refusal::NotRegular(file.mode & libc::S_IFMT));
    }
    if file.uid != me {
        return Some(Refusal::OwnedBy(file.uid));
    }
    if file.mode & 0o026 != 0 {
        return Some(Refusal::Exposed { mode: file.mode });
    }
    if file.nlink != 1 {
        return Some(Refusal::Links(file.nlink));
    }
    None
}

impl Refusal {
    /// A directory refusal for a directory on the way to the file's (`on_the_way`) or for the
    /// file's own.
    fn on_the_way(self, on_the_way: bool) -> Refusal {
        match self {
            Refusal::DirOwnedBy { uid, .. } => Refusal::DirOwnedBy { uid, on_the_way },
            Refusal::DirWritable { mode, .. } => Refusal::DirWritable { mode, on_the_way },
            other => other,
        }
    }

    /// What is wrong and the fix, for the message `cannot open the audit log PATH: …`. `dir`:
    /// the directory (or link) a directory refusal is about, as reached.
    fn explain(self, file: &Path, dir: &Path, me: &User) -> String {
        let path = file.display();
        let which = |on_the_way: bool| {
            if on_the_way {
                format!("the directory {} on its path", dir.display())
            } else {
                format!("its directory {}", dir.display())
            }
        };
        let dir = dir.display();
        match self {
            Refusal::NamesDirectory | Refusal::NotRegular(libc::S_IFDIR) => format!(
                "it is a directory; give the path of a file, e.g. {}",
                file.join("pgkick.log").display()
            ),
            Refusal::DirOwnedBy { uid, on_the_way } => format!(
                "{} is owned by {}, who could remove or replace the log; put it in a directory \
                 owned by {}, on a path of such directories",
                which(on_the_way),
                User::of(uid).described(),
                me.owner_choice()
            ),
            Refusal::DirWritable { mode, on_the_way } => format!(
                "{} (mode {:04o}) is writable by {} and has no sticky bit, so the log could be \
                 removed or replaced; chmod go-w {dir}, or chmod +t {dir} for a shared \
                 directory like /tmp",
                which(on_the_way),
                mode & 0o7777,
                write_who(mode),
            ),
            Refusal::LinkOwnedBy(uid) => format!(
                "{dir} on its path is a symbolic link owned by {}, who could aim it anywhere; \
                 give the path without the link (where it points, if you trust that), or \
                 remove it",
                User::of(uid).described()
            ),
            Refusal::Symlink => format!(
                "it is a symbolic link, which pgkick does not follow (another user could aim it \
                 at a file of {}'s); give the path of the file itself, or remove the link",
                me.name()
            ),
            Refusal::NotRegular(kind) => format!(
                "it is {}, not a regular file; give the path of a regular file",
                kind_name(kind)
            ),
            Refusal::OwnedBy(uid) => format!(
                "it is owned by {}, not by {} who runs pgkick: that user could read or replace \
                 the records; remove it, or chown {} {path} && chmod 600 {path}",
                User::of(uid).described(),
                me.name(),
                me.chown_name()
            ),
            Refusal::Exposed { mode } => {
                let readers = mode & 0o004 != 0;
                let lets = match (mode & 0o022 != 0, readers) {
                    (true, false) => format!("{} rewrite the records", write_who(mode)),
                    (true, true) => format!(
                        "{} rewrite the records and others read them",
                        write_who(mode)
                    ),
                    (false, _) => "others read the records".into(),
                };
                let why = if readers {
                    " (they hold the query texts of the sessions acted on)"
                } else {
                    ""
                };
                format!(
                    "its mode {:04o} lets {lets}{why}; chmod 600 {path}",
                    mode & 0o7777
                )
            }
            Refusal::Links(0) => "it was removed while pgkick opened it; run pgkick again".into(),
            Refusal::Links(n) => format!(
                "it has {n} hard links, so it may be a link another user planted to a file of \
                 {}'s that must not grow; remove {path}, and pgkick creates a new file",
                me.name()
            ),
        }
    }
}

/// Who the write bits of `mode` let write: `its group`, `others` or `its group and others`.
fn write_who(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and others",
        (true, false) => "its group",
        _ => "others",
    }
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO (named pipe)",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFLNK => "a symbolic link",
        _ => "something else",
    }
}

/// A user, as messages name it.
struct User {
    uid: u32,
    name: Option<String>,
}

impl User {
    /// The effective user: the one files are created for and must belong to.
    fn running() -> User {
        // SAFETY: geteuid has no preconditions and cannot fail.
        User::of(unsafe { libc::geteuid() })
    }

    fn of(uid: u32) -> User {
        User {
            uid,
            name: passwd_name(uid),
        }
    }

    /// `alice`, or `uid 1001` without a passwd entry.
    fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("uid {}", self.uid))
    }

    /// `uid 1001 (alice)`.
    fn described(&self) -> String {
        match &self.name {
            Some(name) => format!("uid {} ({name})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }

    /// What chown takes: the name, else the number.
    fn chown_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.uid.to_string())
    }

    /// `root`, or `alice or root`.
    fn owner_choice(&self) -> String {
        if self.uid == 0 {
            self.name()
        } else {
            format!("{} or root", self.name())
        }
    }
}

/// The passwd name of `uid`.
fn passwd_name(uid: u32) -> Option<String> {
    crate::conn::passwd(uid).map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 1001;
    const ALICE: u32 = 1002;

    fn dir(mode: u32, uid: u32) -> Option<Refusal> {
        dir_refusal(
            Facts {
                mode: libc::S_IFDIR | mode,
                uid,
                nlink: 2,
            },
            ME,
        )
    }

    fn file(kind: u32, mode: u32, uid: u32, nlink: u64) -> Option<Refusal> {
        file_refusal(
            Facts {
                mode: kind | mode,
                uid,
                nlink,
            },
            ME,
        )
    }

    #[test]
    fn the_path_splits_on_its_last_slash_and_a_directory_name_is_no_file() {
        let parts = |p: &'static str| {
            split(Path::new(p)).map(|(d, n)| (d.to_str().unwrap(), n.to_str().unwrap()))
        };
        assert_eq!(
            parts("/var/log/pgkick.log"),
            Some(("/var/log", "pgkick.log"))
        );
        assert_eq!(parts("/pgkick.log"), Some(("/", "pgkick.log")));
        assert_eq!(parts("pgkick.log"), Some((".", "pgkick.log")));
        assert_eq!(parts("logs//pgkick.log"), Some(("logs/", "pgkick.log")));
        for directory in ["/var/log/", "/var/log/.", "/var/log/..", ".", "..", "/"] {
            assert_eq!(parts(directory), None, "{directory}");
        }
    }

    #[test]
    fn a_directory_of_ours_or_roots_that_others_cannot_write_is_fine() {
        assert_eq!(dir(0o755, ME), None);
        assert_eq!(dir(0o700, 0), None);
        assert_eq!(dir(0o750, ME), None);
        // Sticky, like /tmp: others may write, but not remove or rename what is ours.
        assert_eq!(dir(0o1777, 0), None);
        assert_eq!(dir(0o1770, ME), None);
    }

    #[test]
    fn a_directory_others_can_write_without_the_sticky_bit_or_of_another_user_is_refused() {
        for mode in [0o775, 0o757, 0o777, 0o2770] {
            assert_eq!(
                dir(mode, ME),
                Some(Refusal::DirWritable {
                    mode: libc::S_IFDIR | mode,
                    on_the_way: false
                }),
                "{mode:o}"
            );
        }
        // Its owner can remove the log whatever the mode, sticky bit or not.
        let theirs = Some(Refusal::DirOwnedBy {
            uid: ALICE,
            on_the_way: false,
        });
        assert_eq!(dir(0o755, ALICE), theirs);
        assert_eq!(dir(0o1777, ALICE), theirs);
    }

    #[test]
    fn a_private_regular_file_of_ours_with_one_link_is_fine() {
        for mode in [0o600, 0o640, 0o400, 0o200] {
            assert_eq!(file(libc::S_IFREG, mode, ME, 1), None, "{mode:o}");
        }
    }

    #[test]
    fn anything_else_is_refused_for_the_first_reason_found() {
        for kind in [
            libc::S_IFIFO,
            libc::S_IFSOCK,
            libc::S_IFCHR,
            libc::S_IFBLK,
            libc::S_IFDIR,
        ] {
            assert_eq!(
                file(kind, 0o600, ME, 1),
                Some(Refusal::NotRegular(kind)),
                "{kind:o}"
            );
        }
        assert_eq!(
            file(libc::S_IFREG, 0o600, ALICE, 1),
            Some(Refusal::OwnedBy(ALICE))
        );
        // Another user's file is refused for being theirs, whatever its mode.
        assert_eq!(
            file(libc::S_IFREG, 0o644, ALICE, 1),
            Some(Refusal::OwnedBy(ALICE))
        );
        for mode in [0o644, 0o620, 0o602, 0o604, 0o666, 0o660] {
            assert_eq!(
                file(libc::S_IFREG, mode, ME, 1),
                Some(Refusal::Exposed {
                    mode: libc::S_IFREG | mode
                }),
                "{mode:o}"
            );
        }
        assert_eq!(file(libc::S_IFREG, 0o600, ME, 2), Some(Refusal::Links(2)));
        assert_eq!(file(libc::S_IFREG, 0o600, ME, 0), Some(Refusal::Links(0)));
    }

    #[test]
    fn each_refusal_names_the_problem_and_the_fix() {
        let me = User {
            uid: 0,
            name: Some("root".into()),
        };
        let alice = User {
            uid: ALICE,
            name: None,
        };
        let path = Path::new("/x/pgkick.log");
        let dir = Path::new("/x");
        let say = |r: Refusal, me: &User| r.explain(path, dir, me);
        assert_eq!(
            say(Refusal::OwnedBy(ALICE), &me),
            "it is owned by uid 1002, not by root who runs pgkick: that user could read or \
             replace the records; remove it, or chown root /x/pgkick.log && chmod 600 \
             /x/pgkick.log"
        );
        assert_eq!(
            say(Refusal::Exposed { mode: 0o100644 }, &me),
            "its mode 0644 lets others read the records (they hold the query texts of the \
             sessions acted on); chmod 600 /x/pgkick.log"
        );
        assert_eq!(
            say(Refusal::Exposed { mode: 0o100620 }, &me),
            "its mode 0620 lets its group rewrite the records; chmod 600 /x/pgkick.log"
        );
        assert!(say(Refusal::Exposed { mode: 0o100666 }, &me).starts_with(
            "its mode 0666 lets its group and others rewrite the records and others read them \
             (they hold"
        ));
        assert_eq!(
            say(
                Refusal::DirWritable {
                    mode: 0o40777,
                    on_the_way: false
                },
                &me
            ),
            "its directory /x (mode 0777) is writable by its group and others and has no \
             sticky bit, so the log could be removed or replaced; chmod go-w /x, or chmod +t \
             /x for a shared directory like /tmp"
        );
        let owned = say(
            Refusal::DirOwnedBy {
                uid: ALICE,
                on_the_way: true,
            },
            &alice,
        );
        assert!(
            owned.starts_with("the directory /x on its path is owned by uid 1002")
                && owned.ends_with("owned by uid 1002 or root, on a path of such directories"),
            "{owned}"
        );
        assert_eq!(
            say(Refusal::LinkOwnedBy(ALICE), &me),
            "/x on its path is a symbolic link owned by uid 1002, who could aim it anywhere; \
             give the path without the link (where it points, if you trust that), or remove it"
        );
        assert!(say(Refusal::Symlink, &me).contains("symbolic link"));
        assert!(say(Refusal::NotRegular(libc::S_IFIFO), &me).starts_with("it is a FIFO"));
        assert_eq!(
            say(Refusal::NotRegular(libc::S_IFDIR), &me),
            "it is a directory; give the path of a file, e.g. /x/pgkick.log/pgkick.log"
        );
        assert!(say(Refusal::Links(3), &me).starts_with("it has 3 hard links"));
        // The user running pgkick without a passwd entry is chowned to by number.
        assert!(say(Refusal::OwnedBy(7), &alice).contains("chown 1002 /x/pgkick.log"));
    }

    /// A directory of the test's own under the temp dir, 0755, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("pgkick-audit-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            chmod(&dir, 0o755);
            Scratch(dir)
        }

        fn dir(&self, name: &str, mode: u32) -> PathBuf {
            let dir = self.0.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            chmod(&dir, mode);
            dir
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn me() -> u32 {
        User::running().uid
    }

    /// The (device, inode) the walk ended on, or why it stopped.
    fn walked(path: &Path) -> Result<(u64, u64), Walk> {
        let fd = walk_to(path, me())?;
        let meta = File::from(fd).metadata().unwrap();
        Ok((meta.dev(), meta.ino()))
    }

    fn id_of(path: &Path) -> (u64, u64) {
        let meta = std::fs::metadata(path).unwrap();
        (meta.dev(), meta.ino())
    }

    #[test]
    fn the_walk_follows_our_own_links_and_dot_dot_to_the_directory_they_name() {
        let s = Scratch::new("walk");
        let logs = s.dir("real/logs", 0o700);
        std::os::unix::fs::symlink(&logs, s.0.join("absolute")).unwrap();
        std::os::unix::fs::symlink("real/logs", s.0.join("relative")).unwrap();
        std::os::unix::fs::symlink("relative", s.0.join("chained")).unwrap();
        for path in [
            logs.clone(),
            s.0.join("absolute"),
            s.0.join("relative"),
            s.0.join("chained"),
            s.0.join("real/logs/../logs/."),
            s.0.join("absolute/../logs"),
        ] {
            assert_eq!(walked(&path).unwrap(), id_of(&logs), "{}", path.display());
        }
    }

    #[test]
    fn the_walk_refuses_a_directory_on_the_way_that_others_can_write() {
        let s = Scratch::new("walk_open");
        let open = s.dir("open", 0o777);
        s.dir("open/mine", 0o700);
        match walked(&open.join("mine")) {
            Err(Walk::Refused(
                Refusal::DirWritable {
                    on_the_way: true, ..
                },
                at,
            )) => assert_eq!(at, open),
            other => panic!("{other:?}"),
        }
        // The same through a link: named as reached.
        std::os::unix::fs::symlink(&open, s.0.join("link")).unwrap();
        assert!(matches!(
            walked(&s.0.join("link/mine")),
            Err(Walk::Refused(Refusal::DirWritable { .. }, at)) if at == open
        ));
        // Sticky, like /tmp: a directory of ours in it is fine.
        chmod(&open, 0o1777);
        assert_eq!(
            walked(&open.join("mine")).unwrap(),
            id_of(&open.join("mine"))
        );
        // The last directory is the file's own.
        chmod(&open, 0o777);
        assert!(matches!(
            walked(&open),
            Err(Walk::Refused(
                Refusal::DirWritable {
                    on_the_way: false,
                    ..
                },
                _
            ))
        ));
    }

    #[test]
    fn the_walk_stops_at_a_link_loop_and_at_what_is_not_a_directory() {
        let s = Scratch::new("walk_loop");
        std::os::unix::fs::symlink("b", s.0.join("a")).unwrap();
        std::os::unix::fs::symlink("a", s.0.join("b")).unwrap();
        match walked(&s.0.join("a")) {
            Err(Walk::Failed(_, e)) => assert_eq!(e.raw_os_error(), Some(libc::ELOOP)),
            other => panic!("{other:?}"),
        }
        std::fs::write(s.0.join("file"), "").unwrap();
        match walked(&s.0.join("file")) {
            Err(Walk::Failed(at, e)) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
                assert_eq!(at, s.0.join("file"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            walked(&s.0.join("missing/x")),
            Err(Walk::Failed(at, e)) if at == s.0.join("missing")
                && e.kind() == io::ErrorKind::NotFound
        ));
    }
}
