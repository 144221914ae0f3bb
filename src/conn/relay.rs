//! A plain (unencrypted) attempt under `require_auth`: the server's authentication requests
//! are read before rust-postgres sees them.
//!
//! rust-postgres opens its own socket and, without TLS, never hands it out, so pgkick
//! connects to the server itself (the same address, port and socket file rust-postgres would
//! use), listens on a unix socket in a new directory only its own user may enter (0700,
//! created atomically, never an existing one), and points rust-postgres there. One relay
//! thread accepts that one connection, removes the directory, and copies the two ways: the
//! server's bytes go through an [`AuthWatch`] first, and a refused request closes both
//! connections before the client has all of it, so no answer (a password) is ever sent.
//! After authentication the relay only copies. None of this happens without require_auth.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::require_auth::AuthWatch;

/// Where the server is.
pub(super) enum Upstream {
    Tcp(SocketAddr),
    /// The socket file (`<dir>/.s.PGSQL.<port>`).
    Unix(PathBuf),
}

/// The TCP keepalive settings rust-postgres would have applied to its own socket.
#[derive(Clone, Copy)]
pub(super) struct Keepalive {
    pub on: bool,
    pub idle: Option<Duration>,
    pub interval: Option<Duration>,
    pub count: Option<u32>,
}

/// A relay waiting for rust-postgres, or relaying. Dropping it stops a relay that was never
/// connected to and removes its directory.
pub(super) struct Relay {
    dir: PathBuf,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
}

/// How long the relay waits for rust-postgres to connect.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

impl Relay {
    /// Connects to `upstream` (within `timeout`), then listens for rust-postgres on
    /// `<private dir>/.s.PGSQL.<port>` and starts relaying through `watch`.
    pub fn start(
        upstream: &Upstream,
        port: u16,
        timeout: Option<Duration>,
        keepalive: Keepalive,
        watch: AuthWatch,
    ) -> io::Result<Relay> {
        let server = Stream::connect(upstream, timeout, keepalive)?;
        let dir = private_dir()?;
        let socket = dir.join(format!(".s.PGSQL.{port}"));
        let listener = match UnixListener::bind(&socket) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(e);
            }
        };
        let relay = Relay {
            dir,
            socket,
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (dir, socket, stop) = (relay.dir.clone(), relay.socket.clone(), relay.stop.clone());
        thread::spawn(move || {
            let client = accept(&listener, &stop);
            drop(listener);
            remove(&socket, &dir);
            if let Some(client) = client {
                run(server, client, watch);
            }
        });
        Ok(relay)
    }

    /// The directory to give rust-postgres as its host.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        remove(&self.socket, &self.dir);
    }
}

fn remove(socket: &Path, dir: &Path) {
    let _ = std::fs::remove_file(socket);
    let _ = std::fs::remove_dir(dir);
}

/// A new directory under the temporary directory, mode 0700, made by this call (mkdir fails
/// on anything already there, a symbolic link included).
fn private_dir() -> io::Result<PathBuf> {
    use std::hash::{BuildHasher, RandomState};
    let base = std::env::temp_dir();
    let mut last = None;
    for attempt in 0..16u32 {
        let key = RandomState::new().hash_one((std::process::id(), attempt, Instant::now()));
        let dir = base.join(format!("pgkick-relay-{key:016x}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no private directory")))
}

/// The one connection rust-postgres makes, unless the relay is stopped or it never comes.
fn accept(listener: &UnixListener, stop: &AtomicBool) -> Option<UnixStream> {
    let deadline = Instant::now() + ACCEPT_TIMEOUT;
    listener.set_nonblocking(true).ok()?;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match listener.accept() {
            Ok((client, _)) => {
                client.set_nonblocking(false).ok()?;
                return Some(client);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut fd = libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, for the duration of the call.
                unsafe { libc::poll(&mut fd, 1, 100) };
            }
            Err(_) => return None,
        }
    }
    None
}

/// Relays until either side closes; the server's bytes through `watch` until it is done.
fn run(server: Stream, client: UnixStream, mut watch: AuthWatch) {
    let (Ok(mut server_in), Ok(mut client_in)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    let (mut server_out, mut client_out) = (server, client);
    thread::spawn(move || {
        let _ = io::copy(&mut client_in, &mut server_out);
        server_out.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match server_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if watch.feed(&buf[..n]).is_err() {
            // Refused: the client never gets the rest of the request, nor answers it.
            server_in.shutdown(Shutdown::Both);
            let _ = client_out.shutdown(Shutdown::Both);
            return;
        }
        if client_out.write_all(&buf[..n]).is_err() {
            server_in.shutdown(Shutdown::Both);
            return;
        }
    }
    let _ = client_out.shutdown(Shutdown::Write);
}

/// The connection to the server.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn connect(
        to: &Upstream,
        timeout: Option<Duration>,
        keepalive: Keepalive,
    ) -> io::Result<Stream> {
        match to {
            Upstream::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path)?)),
            Upstream::Tcp(addr) => {
                let tcp = match timeout {
                    Some(t) => TcpStream::connect_timeout(addr, t)?,
                    None => TcpStream::connect(addr)?,
                };
                tcp.set_nodelay(true)?;
                set_keepalive(&tcp, keepalive)?;
                Ok(Stream::Tcp(tcp))
            }
        }
    }

    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// SO_KEEPALIVE and the TCP_KEEP* options, as rust-postgres sets them on its sockets.
fn set_keepalive(tcp: &TcpStream, k: Keepalive) -> io::Result<()> {
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| -> io::Result<()> {
        // SAFETY: the fd is open for the duration of the call; the value is a c_int.
        let rc = unsafe {
            libc::setsockopt(
                tcp.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let secs = |d: Duration| d.as_secs().clamp(1, libc::c_int::MAX as u64) as libc::c_int;
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, k.on.into())?;
    if !k.on {
        return Ok(());
    }
    if let Some(d) = k.idle {
        set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs(d))?;
    }
    if let Some(d) = k.interval {
        set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs(d))?;
    }
    if let Some(n) = k.count {
        set(
            libc::IPPROTO_TCP,
            libc::TCP_KEEPCNT,
            n.clamp(1, i32::MAX as u32) as libc::c_int,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_private_directory_is_new_and_only_ours() {
        let a = private_dir().unwrap();
        let b = private_dir().unwrap();
        assert_ne!(a, b);
        let meta = std::fs::symlink_metadata(&a).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        std::fs::remove_dir(&a).unwrap();
        std::fs::remove_dir(&b).unwrap();
    }
}
