//! The host list: which servers to try, on which ports, at which addresses.
//!
//! This file owns libpq's host, hostaddr and port lists (matched by position, one port for
//! all hosts or one per host, empty entries meaning the defaults), the choice between a unix
//! socket directory and a TCP host, the default socket directory, and the "connection to
//! server ..." phrase that names one target in messages.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};

use super::{DEFAULT_PORT, DEFAULT_SOCKET_DIRS};

/// Where to connect: a unix socket directory or a TCP host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Directory holding `.s.PGSQL.<port>`.
    Socket(PathBuf),
    /// Host name or IP address literal.
    Tcp(String),
}

impl Host {
    /// The host as libpq's `host` gives it: the socket directory, or the name or address.
    pub fn text(&self) -> String {
        match self {
            Host::Socket(dir) => dir.display().to_string(),
            Host::Tcp(name) => name.clone(),
        }
    }
}

/// One entry of the host list, with the password that applies to it.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    /// libpq's hostaddr: the address to use instead of resolving `host`.
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
    /// The password from the password file for this host, and the file it came from.
    pub pgpass: Option<(String, PathBuf)>,
    /// The line of the password file that matched (from 1).
    pub pgpass_line: Option<usize>,
}

impl Target {
    /// `host:port`, an IPv6 address in brackets.
    pub fn host_port(&self) -> String {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            host => format!("{}:{}", host.text(), self.port),
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("hostaddr", &self.hostaddr)
            .field("port", &self.port)
            .field("pgpass", &self.pgpass.as_ref().map(|(_, file)| file))
            .field("pgpass_line", &self.pgpass_line)
            .finish()
    }
}

pub(super) fn split_list(v: Option<&str>) -> Vec<&str> {
    v.map_or_else(Vec::new, |v| v.split(',').collect())
}

/// libpq's host/hostaddr/port lists: hostaddr and host lists must have the same length; the
/// port list has one entry for all hosts or one per host; empty entries mean defaults.
pub(super) fn parse_hosts(
    host: Option<&str>,
    hostaddr: Option<&str>,
    port: Option<&str>,
) -> Result<Vec<Target>> {
    let hosts = split_list(host);
    let addrs = split_list(hostaddr);
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        bail!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addrs.len()
        );
    }
    let n = hosts.len().max(addrs.len()).max(1);
    let ports = split_list(port);
    if ports.len() > 1 && ports.len() != n {
        bail!("could not match {} port numbers to {n} hosts", ports.len());
    }
    let mut targets = Vec::with_capacity(n);
    for i in 0..n {
        let port_text = ports.get(i).or(ports.first()).copied().unwrap_or("").trim();
        let port = if port_text.is_empty() {
            DEFAULT_PORT
        } else {
            port_text
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| anyhow!("invalid port number: \"{port_text}\""))?
        };
        let name = hosts.get(i).copied().unwrap_or("");
        let addr = addrs.get(i).copied().unwrap_or("");
        let hostaddr = if addr.is_empty() {
            None
        } else {
            Some(addr.parse::<IpAddr>().map_err(|_| {
                anyhow!(
                    "could not parse network address \"{addr}\" (hostaddr must be an IP address)"
                )
            })?)
        };
        let host = if name.starts_with('/') || name.starts_with('@') {
            Host::Socket(PathBuf::from(name))
        } else if !name.is_empty() {
            Host::Tcp(name.to_string())
        } else if let Some(a) = hostaddr {
            Host::Tcp(a.to_string())
        } else {
            Host::Socket(default_socket_dir(port))
        };
        targets.push(Target {
            host,
            hostaddr,
            port,
            pgpass: None,
            pgpass_line: None,
        });
    }
    Ok(targets)
}

pub(super) fn default_socket_dir(port: u16) -> PathBuf {
    DEFAULT_SOCKET_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join(format!(".s.PGSQL.{port}")).exists())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET_DIRS[0]))
}

/// A "connection to server ..." prefix naming the socket file or host, address and port.
pub(super) fn describe_target(t: &Target, addr: Option<IpAddr>) -> String {
    match &t.host {
        Host::Socket(dir) => format!(
            "connection to server on socket \"{}\"",
            dir.join(format!(".s.PGSQL.{}", t.port)).display()
        ),
        Host::Tcp(name) => match addr {
            Some(a) if a.to_string() != *name => {
                format!("connection to server at \"{name}\" ({a}), port {}", t.port)
            }
            _ => format!("connection to server at \"{name}\", port {}", t.port),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::testutil::*;
    use crate::conn::Params;

    #[test]
    fn host_and_port_lists() {
        let s = resolve(
            &args(Some("a,/sock,,b"), Some("1,2,,4"), None, None),
            &[],
            None,
        )
        .unwrap();
        let hosts: Vec<_> = s.targets.iter().map(|t| (t.host.clone(), t.port)).collect();
        assert_eq!(hosts[0], (Host::Tcp("a".into()), 1));
        assert_eq!(hosts[1], (Host::Socket("/sock".into()), 2));
        assert!(matches!(hosts[2], (Host::Socket(_), 5432)));
        assert_eq!(hosts[3], (Host::Tcp("b".into()), 4));
        let s = resolve(&args(Some("a,b"), Some("9"), None, None), &[], None).unwrap();
        assert!(s.targets.iter().all(|t| t.port == 9));
        let err = |a: Params| resolve(&a, &[], None).err().unwrap().to_string();
        assert_eq!(
            err(args(Some("a,b,c"), Some("1,2"), None, None)),
            "could not match 2 port numbers to 3 hosts"
        );
        assert_eq!(
            err(args(None, Some("99999"), None, None)),
            "invalid port number: \"99999\""
        );
        let s = resolve(
            &args(None, None, None, Some("host=h hostaddr=10.1.2.3")),
            &[],
            None,
        )
        .unwrap();
        assert_eq!(s.targets[0].hostaddr, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(s.targets[0].host, Host::Tcp("h".into()));
        let s = resolve(&args(None, None, None, Some("hostaddr=::1")), &[], None).unwrap();
        assert_eq!(s.targets[0].host, Host::Tcp("::1".into()));
        assert!(resolve(
            &args(None, None, None, Some("host=a,b hostaddr=::1")),
            &[],
            None
        )
        .is_err());
    }

    #[test]
    fn target_descriptions() {
        let t = |host| Target {
            host,
            hostaddr: None,
            port: 5433,
            pgpass: None,
            pgpass_line: None,
        };
        assert_eq!(
            describe_target(&t(Host::Socket("/tmp".into())), None),
            "connection to server on socket \"/tmp/.s.PGSQL.5433\""
        );
        assert_eq!(
            describe_target(
                &t(Host::Tcp("db".into())),
                Some("10.0.0.1".parse().unwrap())
            ),
            "connection to server at \"db\" (10.0.0.1), port 5433"
        );
        assert_eq!(
            describe_target(
                &t(Host::Tcp("10.0.0.1".into())),
                Some("10.0.0.1".parse().unwrap())
            ),
            "connection to server at \"10.0.0.1\", port 5433"
        );
    }
}
