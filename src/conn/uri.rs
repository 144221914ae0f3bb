//! libpq's connection URIs (`postgresql://user@host:port/db?key=value`).
//!
//! This file owns their syntax as fe-connect.c's `conninfo_uri_parse` reads it: credentials,
//! host lists with `[IPv6]` literals and per-host ports, the database, percent-decoding and
//! the query parameters. PostgreSQL's own test of this parser (`001_uri.pl`) is replayed
//! through `pgkick conninfo` in `tests/it/conninfo.rs`.

use std::net::Ipv6Addr;

use anyhow::{anyhow, bail, Result};

use super::keywords::{store, Options};
use super::lookalikes::hide_lookalikes;

pub(super) fn uri_prefix_len(s: &str) -> usize {
    ["postgresql://", "postgres://"]
        .iter()
        .find(|p| s.starts_with(**p))
        .map_or(0, |p| p.len())
}

/// Percent-decodes a URI component the way libpq does (`+` stays `+`; `%00` is refused).
pub(super) fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .filter(|_| bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit())
            .ok_or_else(|| anyhow!("invalid percent-encoded token: \"{s}\""))?;
        if hex == 0 {
            bail!("forbidden value %00 in percent-encoded value: \"{s}\"");
        }
        out.push(hex);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| anyhow!("percent-encoded value is not UTF-8: \"{s}\""))
}

/// Parses a `postgresql://` or `postgres://` URI with libpq's rules:
/// `postgresql://[user[:password]@][host][:port][,host[:port]...][/dbname][?key=value&...]`,
/// hosts may be `[IPv6]`, every part is percent-decoded, query parameters are conninfo
/// keywords (`host=/socket/dir` included) and `ssl=true` means `sslmode=require`.
pub fn parse_uri(uri: &str) -> Result<Options> {
    let mut opts = Options::new();
    let rest = &uri[uri_prefix_len(uri)..];
    // Error messages quote the URI as libpq's do, but never its password nor its length.
    let shown = hide_lookalikes(uri);
    if uri_prefix_len(uri) == 0 {
        bail!("invalid URI: \"{shown}\"");
    }

    // Credentials: an '@' before the first '/'.
    let mut rest = rest;
    let cred_end = rest.find(['@', '/']);
    if let Some(at) = cred_end.filter(|&i| rest.as_bytes()[i] == b'@') {
        let creds = &rest[..at];
        let (user, password) = match creds.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (creds, None),
        };
        if !user.is_empty() {
            opts.insert("user".into(), percent_decode(user)?);
        }
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            let p = percent_decode(p).map_err(|_| {
                anyhow!("invalid percent-encoding in the password of URI: \"{shown}\"")
            })?;
            opts.insert("password".into(), p);
        }
        rest = &rest[at + 1..];
    }

    // Host list: netloc[:port] separated by commas.
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    let bytes = rest.as_bytes();
    let mut i = 0;
    let terminator;
    loop {
        let host;
        if bytes.get(i) == Some(&b'[') {
            let start = i + 1;
            let close = rest[start..].find(']').map(|j| start + j).ok_or_else(|| {
                anyhow!(
                    "end of string reached when looking for matching \"]\" in IPv6 host \
                     address in URI: \"{shown}\""
                )
            })?;
            if close == start {
                bail!("IPv6 host address may not be empty in URI: \"{shown}\"");
            }
            host = &rest[start..close];
            i = close + 1;
            if let Some(&c) = bytes.get(i) {
                if !matches!(c, b':' | b'/' | b'?' | b',') {
                    bail!(
                        "unexpected character \"{}\" at position {} in URI (expected \":\" or \
                         \"/\"): \"{shown}\"",
                        c as char,
                        // Counted in the URI as shown, so the masked password's length
                        // does not show through.
                        hide_lookalikes(&uri[..uri.len() - rest.len() + i]).len() + 1
                    );
                }
            }
        } else {
            let start = i;
            while i < bytes.len() && !matches!(bytes[i], b':' | b'/' | b'?' | b',') {
                i += 1;
            }
            host = &rest[start..i];
        }
        hosts.push(host);
        let mut port = "";
        if bytes.get(i) == Some(&b':') {
            let start = i + 1;
            i = start;
            while i < bytes.len() && !matches!(bytes[i], b'/' | b'?' | b',') {
                i += 1;
            }
            port = &rest[start..i];
        }
        ports.push(port);
        if bytes.get(i) != Some(&b',') {
            terminator = bytes.get(i).copied();
            break;
        }
        i += 1;
    }
    let host_list = hosts.join(",");
    if !host_list.is_empty() {
        opts.insert("host".into(), percent_decode(&host_list)?);
    }
    // As libpq stores host and port: only when the list has any text, so `host:/db` leaves
    // the port to -p, PGPORT or the default, while `a:,b:5433` keeps the empty first entry.
    let port_list = ports.join(",");
    if !port_list.is_empty() {
        opts.insert("port".into(), percent_decode(&port_list)?);
    }

    let mut query = None;
    match terminator {
        Some(b'/') => {
            let after = &rest[i + 1..];
            let (db, q) = match after.split_once('?') {
                Some((d, q)) => (d, Some(q)),
                None => (after, None),
            };
            // An empty dbname is left unset, so PGDATABASE still applies.
            if !db.is_empty() {
                opts.insert("dbname".into(), percent_decode(db)?);
            }
            query = q;
        }
        Some(b'?') => query = Some(&rest[i + 1..]),
        _ => {}
    }
    if let Some(query) = query {
        parse_query(query, &mut opts)?;
    }
    Ok(opts)
}

/// The `key=value&...` query of a URI, as libpq's `conninfo_uri_parse_params` reads it: an
/// empty query and one trailing `&` end the list; any other parameter without `=`, including
/// an empty one (`?&`, `a=1&&b=2`), is an error naming its keyword.
fn parse_query(query: &str, opts: &mut Options) -> Result<()> {
    let mut params: Vec<&str> = query.split('&').collect();
    if query.is_empty() || (params.len() > 1 && params.last() == Some(&"")) {
        params.pop();
    }
    let mut after_password = false;
    for param in params {
        let key = parse_param(param, opts).map_err(|e| {
            // What follows a password may be the rest of it (an unencoded '&'): not quoted.
            if after_password {
                anyhow!(
                    "invalid URI query parameter after \"password\" (write a \"&\" in a \
                     password as %26)"
                )
            } else {
                e
            }
        })?;
        after_password = key == "password";
    }
    Ok(())
}

/// One `key=value` of a URI's query, stored; its keyword.
fn parse_param(param: &str, opts: &mut Options) -> Result<String> {
    let mut parts = param.splitn(3, '=');
    let (key, value) = match (parts.next(), parts.next(), parts.next()) {
        (Some(k), Some(_), Some(_)) => {
            bail!("extra key/value separator \"=\" in URI query parameter: \"{k}\"")
        }
        (Some(k), Some(v), None) => (k, v),
        _ => bail!("missing key/value separator \"=\" in URI query parameter: \"{param}\""),
    };
    let key = percent_decode(key)?;
    let value = match key.as_str() {
        "password" => percent_decode(value)
            .map_err(|_| anyhow!("invalid percent-encoding in the URI's password parameter"))?,
        _ => percent_decode(value)?,
    };
    let (key, value) = if key == "ssl" && value == "true" {
        ("sslmode".to_string(), "require".to_string())
    } else {
        (key, value)
    };
    store(opts, &key, value).map_err(|_| anyhow!("invalid URI query parameter: \"{key}\""))?;
    Ok(key)
}

/// Writes options as a URI that [`parse_uri`] reads back to the same options, after `scheme`
/// (`postgresql://` or `postgres://`): the user and password as credentials, the hosts (with
/// their ports when there is one per host) and the database in their places, everything else
/// in the query. Each part percent-encodes only what the parser would read differently there,
/// so an `@` stays visible in a host after credentials and in a database name (where libpq
/// takes it literally): [`super::lookalikes::hide_lookalikes`] then sees what a person would take
/// for the end of a password.
pub(super) fn render_uri(scheme: &str, opts: &Options) -> String {
    let mut rest = opts.clone();
    // An empty value stays in the query: in its place it would mean "not given".
    let mut take = |key: &str| match rest.get(key) {
        Some(v) if !v.is_empty() => rest.remove(key),
        _ => None,
    };
    let user = take("user");
    let password = take("password");
    let host = take("host");
    let dbname = take("dbname");
    let port = match (&host, opts.get("port")) {
        (Some(h), Some(p)) if !p.is_empty() && p.split(',').count() == h.split(',').count() => {
            take("port")
        }
        _ => None,
    };
    let mut uri = scheme.to_string();
    let credentials = user.is_some() || password.is_some();
    if credentials {
        uri.push_str(&encode(user.as_deref().unwrap_or(""), "%@/:"));
        if let Some(p) = &password {
            uri.push(':');
            uri.push_str(&encode(p, "%@/"));
        }
        uri.push('@');
    }
    if let Some(host) = &host {
        // Without credentials, an '@' in the host would make them.
        let special = if credentials { "%/:?,[]" } else { "%/:?,[]@" };
        let ports: Vec<&str> = port
            .as_deref()
            .map_or_else(Vec::new, |p| p.split(',').collect());
        for (i, h) in host.split(',').enumerate() {
            if i > 0 {
                uri.push(',');
            }
            if h.parse::<Ipv6Addr>().is_ok() {
                uri.push_str(&format!("[{h}]"));
            } else {
                uri.push_str(&encode(h, special));
            }
            if let Some(p) = ports.get(i).filter(|p| !p.is_empty()) {
                uri.push(':');
                uri.push_str(&encode(p, "%/?,"));
            }
        }
    }
    if let Some(db) = &dbname {
        uri.push('/');
        uri.push_str(&encode(db, "%?"));
    }
    let query: Vec<String> = rest
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k, "%&="), encode(v, "%&=")))
        .collect();
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query.join("&"));
    }
    uri
}

/// Percent-encodes the `special` characters, blanks and control characters; anything else
/// (non-ASCII text included) is written as it is.
fn encode(s: &str, special: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_control() || c.is_ascii_whitespace() || special.contains(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::testutil::*;

    #[test]
    fn uri_full_form() {
        let o = parse_uri(
            "postgresql://us%40er:p%3Ass@db1.example:5433,[::1]:5434,db3/my%20db?sslmode=verify-full&application_name=x",
        )
        .unwrap();
        assert_eq!(
            o,
            opts(&[
                ("user", "us@er"),
                ("password", "p:ss"),
                ("host", "db1.example,::1,db3"),
                ("port", "5433,5434,"),
                ("dbname", "my db"),
                ("sslmode", "verify-full"),
                ("application_name", "x"),
            ])
        );
    }

    #[test]
    fn uri_short_forms_and_query_params() {
        assert_eq!(parse_uri("postgres://").unwrap(), Options::new());
        assert_eq!(parse_uri("postgresql://h").unwrap(), opts(&[("host", "h")]));
        assert_eq!(
            parse_uri("postgresql://h/").unwrap(),
            opts(&[("host", "h")])
        );
        assert_eq!(
            parse_uri("postgresql://[::1]").unwrap(),
            opts(&[("host", "::1")])
        );
        assert_eq!(
            parse_uri("postgresql:///db?host=/var/lib/postgresql&port=5433").unwrap(),
            opts(&[
                ("dbname", "db"),
                ("host", "/var/lib/postgresql"),
                ("port", "5433")
            ])
        );
        assert_eq!(
            parse_uri("postgresql://%2Ftmp%2Fpg/db").unwrap(),
            opts(&[("host", "/tmp/pg"), ("dbname", "db")])
        );
        assert_eq!(
            parse_uri("postgresql://u@?ssl=true").unwrap(),
            opts(&[("user", "u"), ("sslmode", "require")])
        );
        // '+' is not a space in libpq URIs.
        assert_eq!(
            parse_uri("postgresql:///a+b").unwrap(),
            opts(&[("dbname", "a+b")])
        );
        let err = |s| parse_uri(s).unwrap_err().to_string();
        assert!(err("postgresql://[::1").contains("matching \"]\""));
        assert!(err("postgresql://[]").contains("may not be empty"));
        assert!(err("postgresql://[::1]x").contains("unexpected character \"x\""));
        assert_eq!(
            err("postgresql:///db?foo=1"),
            "invalid URI query parameter: \"foo\""
        );
        assert!(err("postgresql:///db?port").contains("missing key/value separator"));
        assert!(err("postgresql:///db?port=1=2").contains("extra key/value separator"));
        assert!(err("postgresql:///d%zz").contains("invalid percent-encoded token"));
        assert!(err("postgresql:///d%00").contains("forbidden value %00"));
    }

    #[test]
    fn uri_empty_query_and_trailing_ampersand_like_libpq() {
        let h = opts(&[("host", "127.0.0.1"), ("port", "5432")]);
        assert_eq!(parse_uri("postgresql://127.0.0.1:5432?").unwrap(), h);
        assert_eq!(parse_uri("postgresql://127.0.0.1:5432/?").unwrap(), h);
        let with_user = opts(&[("host", "h"), ("user", "u")]);
        assert_eq!(parse_uri("postgresql://h?user=u&").unwrap(), with_user);
        assert_eq!(parse_uri("postgresql://h/?user=u&").unwrap(), with_user);
        let err = |s| parse_uri(s).unwrap_err().to_string();
        // Only one trailing '&' ends the list; an empty parameter anywhere else is an error.
        assert_eq!(
            err("postgresql://h?&"),
            "missing key/value separator \"=\" in URI query parameter: \"\""
        );
        assert_eq!(
            err("postgresql://h?user=u&&"),
            "missing key/value separator \"=\" in URI query parameter: \"\""
        );
        assert_eq!(
            err("postgresql://h?user=u&&port=1"),
            "missing key/value separator \"=\" in URI query parameter: \"\""
        );
        // libpq names the keyword, not the whole parameter.
        assert_eq!(
            err("postgresql://host?key=key=value"),
            "extra key/value separator \"=\" in URI query parameter: \"key\""
        );
    }

    #[test]
    fn uri_empty_port_is_left_to_the_other_sources() {
        assert_eq!(
            parse_uri("postgresql://host:/db").unwrap(),
            opts(&[("host", "host"), ("dbname", "db")])
        );
        assert_eq!(parse_uri("postgres://:/").unwrap(), Options::new());
        // In a list, the empty entry keeps its place so the ports still pair with the hosts.
        assert_eq!(
            parse_uri("postgresql://a:,b:5433").unwrap(),
            opts(&[("host", "a,b"), ("port", ",5433")])
        );
    }

    #[test]
    fn uri_errors_never_show_the_password() {
        let err = |s| parse_uri(s).unwrap_err().to_string();
        assert_eq!(
            err("postgresql://u:secret@[::1"),
            "end of string reached when looking for matching \"]\" in IPv6 host address in \
             URI: \"postgresql://u:******@[::1\""
        );
        assert_eq!(
            err("postgres://u:secret@[::1]z"),
            "unexpected character \"z\" at position 26 in URI (expected \":\" or \"/\"): \
             \"postgres://u:******@[::1]z\""
        );
        // A longer password: neither it nor its length shows, the position counts in the
        // URI as shown.
        assert_eq!(
            err("postgres://u:much-longer-secret@[::1]z"),
            "unexpected character \"z\" at position 26 in URI (expected \":\" or \"/\"): \
             \"postgres://u:******@[::1]z\""
        );
        assert!(!err("postgresql://u:se%zzcret@h").contains("se%zz"));
        assert!(!err("postgresql://h?password=se%zzcret").contains("se%zz"));
        assert!(!err("postgresql://h?pass%77ord=se%zzcret").contains("se%zz"));
        // What follows a password in the query may be the rest of it.
        for uri in [
            "postgresql://h?password=a&bsecret",
            "postgresql://h?password=a&bsecret=x",
            "postgresql://h?password=a&bsecret=x=y",
            "postgresql://h?password=a&bsec%zzret=x",
        ] {
            let e = err(uri);
            assert!(!e.contains("sec"), "{e}");
            assert!(e.contains("%26"), "{e}");
        }
        assert!(err("postgresql://h?port=1&bogus").contains("\"bogus\""));
    }

    #[test]
    fn rendered_uris_parse_back_to_the_same_options() {
        let cases: &[&[(&str, &str)]] = &[
            &[
                ("user", "alice"),
                ("password", "p@ss:w/rd?&="),
                ("host", "db1"),
                ("port", "5433"),
            ],
            &[
                ("host", "a,::1,/tmp/sock dir"),
                ("port", "1,,3"),
                ("dbname", "my db/x"),
            ],
            &[("host", "a,b"), ("port", "5432")],
            &[
                ("port", "6432"),
                ("sslmode", "require"),
                ("application_name", "x&y=z"),
            ],
            &[("host", ""), ("user", ""), ("dbname", ""), ("port", "")],
            &[("password", "%00%"), ("options", "-c a=b")],
            &[("host", "h"), ("port", "")],
            &[("dbname", "café"), ("user", "ü:x")],
            &[("host", "x@h,y"), ("port", ","), ("dbname", "d@b/c:,")],
            &[
                ("user", "u@v"),
                ("password", "p"),
                ("host", "x@h"),
                ("dbname", "a@b"),
            ],
        ];
        for case in cases {
            let o = opts(case);
            for scheme in ["postgresql://", "postgres://"] {
                let text = render_uri(scheme, &o);
                assert!(text.starts_with(scheme), "{text}");
                assert_eq!(parse_uri(&text).unwrap(), o, "{text}");
            }
        }
        assert_eq!(
            render_uri(
                "postgresql://",
                &opts(&[
                    ("user", "u"),
                    ("password", "p"),
                    ("host", "::1"),
                    ("port", "5")
                ])
            ),
            "postgresql://u:p@[::1]:5"
        );
    }
}
