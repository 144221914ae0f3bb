//! libpq's `require_auth` (PostgreSQL 16): which authentication requests the server may make,
//! checked before pgkick answers one, so that a password is never sent by a method the user
//! ruled out.
//!
//! This file owns the setting's syntax and meaning, as fe-connect.c parses it and fe-auth.c's
//! `check_expected_areq` applies it, and [`AuthWatch`], which reads the server's bytes as they
//! arrive (message framing, the code of each `R` message) and says when the client must not
//! see them. Where the bytes are read is `tls.rs` (a TLS session's decrypted bytes) and
//! `relay.rs` (a plain connection, relayed); what an attempt does with a refusal is
//! `attempts.rs`.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Error, Result};

const AUTH_OK: u32 = 0;
const AUTH_PASSWORD: u32 = 3;
const AUTH_MD5: u32 = 5;
const AUTH_GSS: u32 = 7;
const AUTH_GSS_CONT: u32 = 8;
const AUTH_SSPI: u32 = 9;
const AUTH_SASL: u32 = 10;
const AUTH_SASL_CONT: u32 = 11;
const AUTH_SASL_FIN: u32 = 12;

/// A parsed `require_auth`: the authentication requests allowed, and whether the server must
/// authenticate the client at all (`none` allows it not to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireAuth {
    /// As given, for messages.
    text: String,
    /// Bit `n` set: request code `n` may be answered.
    allowed: u32,
    /// The server may not let the client in without an exchange it finished.
    auth_required: bool,
}

impl FromStr for RequireAuth {
    type Err = Error;

    /// libpq's syntax: methods separated by commas, all of them or none negated with `!`;
    /// `password`, `md5`, `gss`, `sspi`, `scram-sha-256` and `none`; each at most once.
    fn from_str(text: &str) -> Result<RequireAuth> {
        let mut rule = RequireAuth {
            text: text.to_string(),
            allowed: 0,
            auth_required: true,
        };
        let mut negated = false;
        for (i, part) in text.split(',').enumerate() {
            let method = match part.strip_prefix('!') {
                Some(method) if i == 0 => {
                    // Start from everything allowed, and take away.
                    rule.auth_required = false;
                    rule.allowed = u32::MAX;
                    negated = true;
                    method
                }
                Some(_) if !negated => bail!(
                    "negative require_auth method \"{part}\" cannot be mixed with non-negative \
                     methods"
                ),
                Some(method) => method,
                None if negated => {
                    bail!("require_auth method \"{part}\" cannot be mixed with negative methods")
                }
                None => part,
            };
            let bits = match method {
                "password" => 1 << AUTH_PASSWORD,
                "md5" => 1 << AUTH_MD5,
                "gss" => (1 << AUTH_GSS) | (1 << AUTH_GSS_CONT),
                "sspi" => (1 << AUTH_SSPI) | (1 << AUTH_GSS_CONT),
                "scram-sha-256" => (1 << AUTH_SASL) | (1 << AUTH_SASL_CONT) | (1 << AUTH_SASL_FIN),
                "none" => {
                    // `none` allows no request: it lets the server skip them; `!none` makes
                    // it not.
                    if rule.auth_required == negated {
                        bail!("require_auth method \"{part}\" is specified more than once");
                    }
                    rule.auth_required = negated;
                    continue;
                }
                _ => bail!(
                    "invalid require_auth value: \"{method}\" (use password, md5, gss, sspi, \
                     scram-sha-256 or none, separated by commas, or all of them negated with !)"
                ),
            };
            let duplicate = if negated {
                rule.allowed & bits == 0
            } else {
                rule.allowed & bits == bits
            };
            if duplicate {
                bail!("require_auth method \"{part}\" is specified more than once");
            }
            if negated {
                rule.allowed &= !bits;
            } else {
                rule.allowed |= bits;
            }
        }
        Ok(rule)
    }
}

impl RequireAuth {
    /// `check_expected_areq`: may the client answer request `code`? `finished` tells whether
    /// the client already did its part (sent a password, or received a SCRAM exchange's
    /// final message, whose server signature rust-postgres verifies).
    fn check(&self, code: u32, finished: bool) -> Result<(), String> {
        let reason = match code {
            AUTH_OK if !self.auth_required || finished => return Ok(()),
            AUTH_OK => "server did not complete authentication",
            AUTH_PASSWORD | AUTH_MD5 | AUTH_GSS..=AUTH_SASL_FIN
                if self.allowed & (1 << code) != 0 =>
            {
                return Ok(())
            }
            AUTH_PASSWORD => "server requested a cleartext password",
            AUTH_MD5 => "server requested a hashed password",
            AUTH_GSS | AUTH_GSS_CONT => "server requested GSSAPI authentication",
            AUTH_SSPI => "server requested SSPI authentication",
            AUTH_SASL..=AUTH_SASL_FIN => "server requested SASL authentication",
            _ => "server requested an unknown authentication type",
        };
        Err(format!(
            "authentication method requirement \"{}\" failed: {reason}",
            self.text
        ))
    }
}

/// Where an [`AuthWatch`] leaves its refusal for the attempt to report: set at most once.
pub type Verdict = Arc<OnceLock<String>>;

/// The server's side of a connection's startup, read as it arrives, until authentication
/// has succeeded: each authentication request is checked against a [`RequireAuth`] as soon
/// as its code is complete, before the client may see the whole message.
pub struct AuthWatch {
    rule: RequireAuth,
    /// The first bytes of the message being read: type, length, and for `R` the code.
    head: Vec<u8>,
    /// Bytes of the current message still to pass unread.
    skip: usize,
    /// The client has done its part of the exchange.
    finished: bool,
    /// AuthenticationOk has passed: nothing more to check.
    done: bool,
    verdict: Verdict,
}

impl AuthWatch {
    pub fn new(rule: RequireAuth) -> AuthWatch {
        AuthWatch {
            rule,
            head: Vec::with_capacity(9),
            skip: 0,
            finished: false,
            done: false,
            verdict: Verdict::default(),
        }
    }

    /// Where the refusal will be, once there is one.
    pub fn verdict(&self) -> Verdict {
        Arc::clone(&self.verdict)
    }

    /// Reads the next `bytes` from the server. `Err` (also left in the verdict) when they
    /// must not reach the client: the connection is then to be dropped.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        if let Some(refusal) = self.verdict.get() {
            return Err(refusal.clone());
        }
        self.read(bytes).inspect_err(|refusal| {
            let _ = self.verdict.set(refusal.clone());
        })
    }

    fn read(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() && !self.done {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            self.head.push(bytes[0]);
            bytes = &bytes[1..];
            let len =
                || u32::from_be_bytes([self.head[1], self.head[2], self.head[3], self.head[4]]);
            match (self.head[0], self.head.len()) {
                (_, 5) if len() < 4 => return Err("received invalid message length".into()),
                (b'R', 5) if !(8..=2000).contains(&len()) => {
                    return Err("received invalid authentication request".into())
                }
                (b'R', 5) => {}
                (_, 5) => {
                    // ErrorResponse, NegotiateProtocolVersion, ...: passed on unread.
                    self.skip = len() as usize - 4;
                    self.head.clear();
                }
                (b'R', 9) => {
                    let code = u32::from_be_bytes([
                        self.head[5],
                        self.head[6],
                        self.head[7],
                        self.head[8],
                    ]);
                    self.rule.check(code, self.finished)?;
                    match code {
                        AUTH_OK => self.done = true,
                        AUTH_PASSWORD | AUTH_MD5 | AUTH_SASL_FIN => self.finished = true,
                        _ => {}
                    }
                    self.skip = len() as usize - 8;
                    self.head.clear();
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> RequireAuth {
        text.parse().unwrap()
    }

    fn parse_error(text: &str) -> String {
        text.parse::<RequireAuth>().unwrap_err().to_string()
    }

    /// An authentication request with `code` and `extra` bytes.
    fn request(code: u32, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(((8 + extra.len()) as u32).to_be_bytes());
        m.extend(code.to_be_bytes());
        m.extend(extra);
        m
    }

    /// What the watch says of `messages`, fed one byte at a time (the worst split).
    fn feed_bytewise(rule_text: &str, messages: &[&[u8]]) -> Result<(), String> {
        let mut watch = AuthWatch::new(rule(rule_text));
        for byte in messages.concat() {
            watch.feed(&[byte])?;
        }
        Ok(())
    }

    #[test]
    fn require_auth_parses_as_libpq() {
        assert_eq!(rule("scram-sha-256").allowed, 0b1_1100_0000_0000);
        assert!(rule("scram-sha-256").auth_required);
        let r = rule("password,md5");
        assert_eq!(r.allowed, (1 << 3) | (1 << 5));
        assert!(!rule("none").auth_required);
        assert_eq!(rule("none").allowed, 0);
        let r = rule("!password,!md5");
        assert!(!r.auth_required);
        assert_eq!(r.allowed & ((1 << 3) | (1 << 5)), 0);
        assert_ne!(r.allowed & (1 << 10), 0);
        assert!(rule("!none").auth_required);
        assert_eq!(rule("!none").allowed, u32::MAX);
        assert_eq!(rule("gss,sspi").allowed, (1 << 7) | (1 << 8) | (1 << 9));
        assert_eq!(
            parse_error("password,!md5"),
            "negative require_auth method \"!md5\" cannot be mixed with non-negative methods"
        );
        assert_eq!(
            parse_error("!password,md5"),
            "require_auth method \"md5\" cannot be mixed with negative methods"
        );
        for dup in ["md5,md5", "none,none", "!none,!none", "!md5,!md5"] {
            assert!(
                parse_error(dup).contains("is specified more than once"),
                "{dup}"
            );
        }
        // gss and sspi share GSS_CONT but each is one method.
        assert!("gss,sspi".parse::<RequireAuth>().is_ok());
        for bad in ["", "scram", "Password", " md5", "md5,", "!"] {
            assert!(
                parse_error(bad).starts_with("invalid require_auth value"),
                "{bad:?}: {}",
                parse_error(bad)
            );
        }
    }

    #[test]
    fn requests_are_checked_before_the_client_sees_them_whole() {
        let cleartext = request(3, &[]);
        let md5 = request(5, b"salt");
        let sasl = request(10, b"SCRAM-SHA-256\0\0");
        let sasl_continue = request(11, b"r=nonce,s=salt,i=4096");
        let sasl_final = request(12, b"v=signature");
        let ok = request(0, &[]);
        let refused = |text: &str, reason: &str| {
            Err(format!(
                "authentication method requirement \"{text}\" failed: {reason}"
            ))
        };
        assert_eq!(
            feed_bytewise("scram-sha-256", &[&cleartext]),
            refused("scram-sha-256", "server requested a cleartext password")
        );
        assert_eq!(
            feed_bytewise("!password", &[&cleartext]),
            refused("!password", "server requested a cleartext password")
        );
        assert_eq!(feed_bytewise("password", &[&cleartext, &ok]), Ok(()));
        assert_eq!(
            feed_bytewise("none", &[&cleartext]),
            refused("none", "server requested a cleartext password")
        );
        assert_eq!(
            feed_bytewise("scram-sha-256", &[&md5]),
            refused("scram-sha-256", "server requested a hashed password")
        );
        assert_eq!(
            feed_bytewise("password", &[&sasl]),
            refused("password", "server requested SASL authentication")
        );
        // A complete SCRAM exchange, and one the server cuts short with an OK.
        let full: [&[u8]; 4] = [&sasl, &sasl_continue, &sasl_final, &ok];
        assert_eq!(feed_bytewise("scram-sha-256", &full), Ok(()));
        assert_eq!(
            feed_bytewise("scram-sha-256", &[&sasl, &sasl_continue, &ok]),
            refused("scram-sha-256", "server did not complete authentication")
        );
        // Trust: an OK at once.
        assert_eq!(
            feed_bytewise("scram-sha-256", &[&ok]),
            refused("scram-sha-256", "server did not complete authentication")
        );
        assert_eq!(feed_bytewise("none", &[&ok]), Ok(()));
        assert_eq!(feed_bytewise("!password", &[&ok]), Ok(()));
        assert_eq!(
            feed_bytewise("!none", &[&ok]),
            refused("!none", "server did not complete authentication")
        );
        assert_eq!(
            feed_bytewise("scram-sha-256", &[&request(2, &[])]),
            refused(
                "scram-sha-256",
                "server requested an unknown authentication type"
            )
        );
    }

    #[test]
    fn the_watch_passes_other_messages_and_stops_after_authentication() {
        let mut error = vec![b'E'];
        error.extend(9u32.to_be_bytes());
        error.extend(b"SFATAL\0\0\0"[..5].iter());
        assert_eq!(feed_bytewise("scram-sha-256", &[&error]), Ok(()));
        // After AuthenticationOk, anything (a query's rows) passes unread, even an 'R'.
        let mut after = request(0, &[]);
        after.extend(request(3, &[]));
        assert_eq!(
            feed_bytewise("password", &[&request(3, &[]), &after]),
            Ok(())
        );
        // The first byte of a forbidden request's code may pass; the last may not.
        let mut watch = AuthWatch::new(rule("md5"));
        let cleartext = request(3, &[]);
        assert!(watch.feed(&cleartext[..8]).is_ok());
        assert!(watch.feed(&cleartext[8..]).is_err());
        assert!(watch.verdict().get().is_some());
        assert!(watch.feed(b"more").is_err(), "refused for good");
        // A request whose length is out of bounds is refused.
        let mut bogus = vec![b'R'];
        bogus.extend(100_000u32.to_be_bytes());
        assert_eq!(
            feed_bytewise("md5", &[&bogus]),
            Err("received invalid authentication request".into())
        );
    }
}
