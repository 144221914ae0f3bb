//! Connecting with resolved settings: every host in turn, every address of a host, and
//! libpq's sslmode retries on one address.
//!
//! This file owns the order of attempts (load_balance_hosts, target_session_attrs with
//! prefer-standby's two passes), which password each attempt uses, the rust-postgres
//! configuration of one attempt, when `allow` and `prefer` try a second time, the check
//! of target_session_attrs once a session is up, and, under require_auth, which attempt
//! reads the server's requests where (a TLS session through `tls.rs`, a plain connection
//! through `relay.rs`) and that a refusal ends the whole connection, as in libpq. Bounding
//! each attempt by connect_timeout is `timeout.rs`; the words of a failure are `explain.rs`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use postgres::config::{SslMode as PgSslMode, SslNegotiation};

use super::explain::{is_password_missing, is_tls_error, server_refused_tls};
use super::hosts::{describe_target, Host, Target};
use super::relay::{Keepalive, Relay, Upstream};
use super::require_auth::AuthWatch;
use super::settings::{PasswordSource, SessionAttrs, Settings};
use super::timeout::run_with_timeout;
use super::tls::{Attempt, SslMode, TlsConnector};
use super::try_error::TryError;

/// Why connecting failed.
#[derive(Debug)]
pub enum Failure {
    /// The server asked for a password and none was known.
    NeedPassword {
        /// The "connection to server ..." prefix.
        place: String,
        /// `host:port` of the server that asked, for the prompt.
        host_port: String,
    },
    /// Every host was up but none had the target_session_attrs property; as one line.
    NotTarget(String),
    /// Everything else, as one line naming each host's problem.
    Other(String),
}

/// A session that is up, and which target and address it went to.
pub struct Connected {
    pub client: postgres::Client,
    /// The host list entry that accepted.
    pub target: Target,
    /// The address connected to: hostaddr, or the address of the host name that accepted;
    /// `None` for a unix socket.
    pub addr: Option<IpAddr>,
    /// The "connection to server ..." phrase naming them.
    pub place: String,
}

/// One address of one host: where a single attempt goes.
#[derive(Clone, Copy)]
struct Place<'a> {
    target: &'a Target,
    /// hostaddr, or one address of the host name; None for a unix socket.
    addr: Option<IpAddr>,
}

impl Settings {
    /// Tries every host in order (libpq: the first that accepts wins), with `typed` as the
    /// password from a prompt.
    pub fn connect(&self, typed: Option<&str>) -> Result<Connected, Failure> {
        let mut order: Vec<&Target> = self.targets.iter().collect();
        if self.load_balance {
            shuffle(&mut order);
        }
        let needs_tls = self.tls.mode != SslMode::Disable
            && order.iter().any(|t| matches!(t.host, Host::Tcp(_)));
        let connector = if needs_tls {
            Some(
                self.tls
                    .connector()
                    .map_err(|e| Failure::Other(format!("{e:#}")))?,
            )
        } else {
            None
        };
        let passes = match self.target_session_attrs {
            SessionAttrs::PreferStandby => vec![SessionAttrs::Standby, SessionAttrs::Any],
            a => vec![a],
        };
        let mut errors: Vec<String> = Vec::new();
        let mut only_attrs = true;
        let mut need_password = None;
        for attrs in &passes {
            for target in &order {
                let password = self.password_for(target, typed);
                let addrs: Vec<Option<IpAddr>> = match (&target.host, target.hostaddr) {
                    (_, Some(a)) => vec![Some(a)],
                    (Host::Socket(_), None) => vec![None],
                    (Host::Tcp(name), None) => match (name.as_str(), target.port).to_socket_addrs()
                    {
                        Ok(a) => a.map(|s: SocketAddr| Some(s.ip())).collect(),
                        Err(e) => {
                            let e = e.to_string();
                            let e = e
                                .strip_prefix("failed to lookup address information: ")
                                .unwrap_or(&e);
                            errors.push(format!(
                                "could not translate host name \"{name}\" to address: {e}"
                            ));
                            only_attrs = false;
                            continue;
                        }
                    },
                };
                for addr in addrs {
                    let place = describe_target(target, addr);
                    match self.try_address(
                        Place { target, addr },
                        password,
                        *attrs,
                        connector.as_ref(),
                    ) {
                        Ok(client) => {
                            return Ok(Connected {
                                client,
                                target: (*target).clone(),
                                addr,
                                place,
                            })
                        }
                        Err(TryError::Pg(e)) if is_password_missing(&e) => {
                            need_password.get_or_insert((place, target.host_port()));
                        }
                        // libpq: a refused request fails the connection, not only the host
                        // (pg_fe_sendauth's error ends PQconnectPoll): no other address,
                        // host or sslmode is tried to get around it.
                        Err(TryError::Refused(why)) => {
                            errors.push(format!("{place} failed: {why}"));
                            return Err(Failure::Other(errors.join("; ")));
                        }
                        Err(e) => {
                            only_attrs &= matches!(e, TryError::Attrs(_));
                            errors.push(format!("{place} failed: {}", self.explain(&e, target)))
                        }
                    }
                }
            }
        }
        // psql prompts when any host asked for a password that was not known.
        if let Some((place, host_port)) = need_password {
            return Err(Failure::NeedPassword { place, host_port });
        }
        if only_attrs && !errors.is_empty() {
            return Err(Failure::NotTarget(errors.join("; ")));
        }
        Err(Failure::Other(errors.join("; ")))
    }

    pub(super) fn password_for<'a>(
        &'a self,
        target: &'a Target,
        typed: Option<&'a str>,
    ) -> Option<&'a str> {
        match (&self.password, typed) {
            (Some((p, PasswordSource::Dbname)), _) => Some(p),
            (_, Some(t)) => Some(t),
            (Some((p, _)), None) => Some(p),
            (None, None) => target.pgpass.as_ref().map(|(p, _)| p.as_str()),
        }
    }

    /// One address, with libpq's sslmode retries (`allow`: plain then TLS when the server
    /// rejects the plain session; `prefer`: TLS then plain when the handshake fails or the
    /// server rejects the encrypted session). Unix sockets never use TLS.
    fn try_address(
        &self,
        place: Place<'_>,
        password: Option<&str>,
        attrs: SessionAttrs,
        connector: Option<&TlsConnector>,
    ) -> Result<postgres::Client, TryError> {
        let target = place.target;
        let attempts: &[Attempt] = match (&target.host, connector) {
            (Host::Tcp(_), Some(_)) => self.tls.attempts(),
            _ => &[Attempt::Plain],
        };
        let mut last = None;
        for (i, attempt) in attempts.iter().enumerate() {
            let tls = connector.filter(|_| *attempt != Attempt::Plain);
            let (result, refusal) = self.attempt(place, password, *attempt, tls);
            let err = match result {
                Ok(client) => return check_attrs(client, attrs),
                // What the watch refused is the reason, whatever rust-postgres made of it.
                Err(e) => refusal.map_or(e, TryError::Refused),
            };
            let retry = i + 1 < attempts.len()
                && match (&err, attempt) {
                    (TryError::Pg(e), Attempt::Plain) => e.as_db_error().is_some(),
                    (TryError::Pg(e), Attempt::TryTls) => {
                        let started = tls.is_some_and(TlsConnector::handshake_started);
                        (started && (e.as_db_error().is_some() || is_tls_error(e)))
                            || (!started && server_refused_tls(e))
                    }
                    _ => false,
                };
            if !retry {
                return Err(err);
            }
            last = Some(err);
        }
        Err(last.expect("at least one attempt"))
    }

    /// One connection, bounded by connect_timeout; with require_auth, the refusal of the
    /// server's request too, when there was one.
    fn attempt(
        &self,
        place: Place<'_>,
        password: Option<&str>,
        attempt: Attempt,
        tls: Option<&TlsConnector>,
    ) -> (Result<postgres::Client, TryError>, Option<String>) {
        let Place { target, addr } = place;
        let watch = self.require_auth.clone().map(AuthWatch::new);
        let verdict = watch.as_ref().map(AuthWatch::verdict);
        let refusal = || verdict.as_ref().and_then(|v| v.get().cloned());
        // Under require_auth, prefer's TLS attempt requires TLS: with `prefer`, rust-postgres
        // would go on unencrypted on the same socket when the server declines, unwatched; the
        // plain attempt that follows is watched instead.
        let attempt = match attempt {
            Attempt::TryTls if watch.is_some() => Attempt::Tls,
            a => a,
        };
        let mut cfg = self.config(password, target.port, attempt);
        let result = match (tls, watch) {
            (Some(tls), watch) => {
                tls.reset(watch);
                add_host(&mut cfg, target, addr);
                let tls = tls.clone();
                run_with_timeout(self.connect_timeout, move || {
                    cfg.connect(tls).map_err(TryError::Pg)
                })
            }
            (None, None) => {
                add_host(&mut cfg, target, addr);
                run_with_timeout(self.connect_timeout, move || {
                    cfg.connect(postgres::NoTls).map_err(TryError::Pg)
                })
            }
            (None, Some(watch)) => {
                let upstream = match (&target.host, addr) {
                    (Host::Socket(dir), _) => {
                        Upstream::Unix(dir.join(format!(".s.PGSQL.{}", target.port)))
                    }
                    (Host::Tcp(_), Some(a)) => Upstream::Tcp(SocketAddr::new(a, target.port)),
                    (Host::Tcp(name), None) => {
                        let e = std::io::Error::other(format!("no address for \"{name}\""));
                        return (Err(TryError::Io(e)), None);
                    }
                };
                let (port, timeout) = (target.port, self.connect_timeout);
                let keepalive = Keepalive {
                    on: self.keepalives,
                    idle: self.keepalives_idle,
                    interval: self.keepalives_interval,
                    count: self.keepalives_count,
                };
                run_with_timeout(timeout, move || {
                    let relay = Relay::start(&upstream, port, timeout, keepalive, watch)
                        .map_err(TryError::Io)?;
                    cfg.host_path(relay.socket_dir());
                    cfg.connect(postgres::NoTls).map_err(TryError::Pg)
                })
            }
        };
        (result, refusal())
    }

    /// rust-postgres' configuration of one attempt, but for where to connect.
    fn config(&self, password: Option<&str>, port: u16, attempt: Attempt) -> postgres::Config {
        let mut cfg = postgres::Config::new();
        cfg.user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .port(port)
            .keepalives(self.keepalives)
            .channel_binding(self.channel_binding)
            .notice_callback(super::notices::record)
            .ssl_mode(match attempt {
                Attempt::Plain => PgSslMode::Disable,
                Attempt::TryTls => PgSslMode::Prefer,
                Attempt::Tls => PgSslMode::Require,
            });
        if self.ssl_negotiation_direct {
            cfg.ssl_negotiation(SslNegotiation::Direct);
        }
        if let Some(d) = self.keepalives_idle {
            cfg.keepalives_idle(d);
        }
        if let Some(d) = self.keepalives_interval {
            cfg.keepalives_interval(d);
        }
        if let Some(n) = self.keepalives_count {
            cfg.keepalives_retries(n);
        }
        if let Some(o) = &self.options {
            cfg.options(o);
        }
        if let Some(p) = password {
            cfg.password(p);
        }
        cfg
    }
}

/// Where rust-postgres connects itself: the socket directory, or the host name (for TLS) and
/// the address.
fn add_host(cfg: &mut postgres::Config, target: &Target, addr: Option<IpAddr>) {
    match &target.host {
        Host::Socket(dir) => {
            cfg.host_path(dir);
        }
        Host::Tcp(name) => {
            cfg.host(name);
        }
    }
    if let Some(a) = addr {
        cfg.hostaddr(a);
    }
}

/// target_session_attrs, checked as libpq does after the session is up.
fn check_attrs(
    mut client: postgres::Client,
    attrs: SessionAttrs,
) -> Result<postgres::Client, TryError> {
    let (sql, want, msg) = match attrs {
        SessionAttrs::Any | SessionAttrs::PreferStandby => return Ok(client),
        SessionAttrs::ReadWrite => ("SHOW transaction_read_only", "off", "session is read-only"),
        SessionAttrs::ReadOnly => (
            "SHOW transaction_read_only",
            "on",
            "session is not read-only",
        ),
        SessionAttrs::Primary => (
            "SELECT pg_catalog.pg_is_in_recovery()",
            "f",
            "server is in hot standby mode",
        ),
        SessionAttrs::Standby => (
            "SELECT pg_catalog.pg_is_in_recovery()",
            "t",
            "server is not in hot standby mode",
        ),
    };
    let rows = client.simple_query(sql).map_err(TryError::Pg)?;
    let value = rows.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    if value.as_deref() == Some(want) {
        Ok(client)
    } else {
        Err(TryError::Attrs(msg))
    }
}

/// load_balance_hosts=random without a rand dependency: a randomly keyed hasher orders the
/// hosts.
fn shuffle<T>(items: &mut [T]) {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    let mut keys: Vec<u64> = (0..items.len()).map(|i| state.hash_one(i)).collect();
    // Selection sort by key, swapping items alongside.
    for i in 0..items.len() {
        let min = (i..items.len()).min_by_key(|&j| keys[j]).unwrap_or(i);
        keys.swap(i, min);
        items.swap(i, min);
    }
}

#[cfg(test)]
mod tests {
    use crate::conn::testutil::*;
    use crate::conn::Params;

    #[test]
    fn password_precedence() {
        let s = resolve(
            &args(None, None, None, Some("password=conn")),
            &[("PGPASSWORD", "env")],
            None,
        )
        .unwrap();
        let t = &s.targets[0];
        assert_eq!(s.password_for(t, None), Some("conn"));
        assert_eq!(
            s.password_for(t, Some("typed")),
            Some("conn"),
            "libpq expands dbname last"
        );
        let s = resolve(&Params::default(), &[("PGPASSWORD", "env")], None).unwrap();
        assert_eq!(s.password_for(&s.targets[0], Some("typed")), Some("typed"));
        assert_eq!(s.password_for(&s.targets[0], None), Some("env"));
    }
}
