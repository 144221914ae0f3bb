//! The connection service file (`pg_service.conf`): named sets of connection options.
//!
//! This file owns where the files are looked for (`PGSERVICEFILE` or `~/.pg_service.conf`,
//! then `$PGSYSCONFDIR/pg_service.conf`), their syntax, and filling the options a service
//! names into those still unset.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use super::keywords::{Options, KEYWORDS};

/// Where the system-wide pg_service.conf lives when PGSYSCONFDIR is unset (Debian's libpq).
const SYSCONFDIR: &str = "/etc/postgresql-common";

/// Fills unset options from the service's section: `PGSERVICEFILE` or `~/.pg_service.conf`
/// first, then `$PGSYSCONFDIR/pg_service.conf`, and returns the file that defined it. An
/// unknown service is an error.
pub(super) fn apply_service(
    opts: &mut Options,
    service: &str,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<PathBuf> {
    let user_file = match env("PGSERVICEFILE") {
        Some(f) => Some(PathBuf::from(f)),
        None => home.map(|h| h.join(".pg_service.conf")),
    };
    let sysconfdir = env("PGSYSCONFDIR").unwrap_or_else(|| SYSCONFDIR.to_string());
    let system_file = Path::new(&sysconfdir).join("pg_service.conf");
    let mut searched = Vec::new();
    for file in user_file.into_iter().chain([system_file]) {
        searched.push(file.display().to_string());
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let Some(section) = parse_service_file(&text, service, &file)? {
            for (k, v) in section {
                opts.entry(k).or_insert(v);
            }
            return Ok(file);
        }
    }
    bail!(
        "definition of service \"{service}\" not found (searched {}); check PGSERVICE or \
         service=, or set PGSERVICEFILE",
        searched.join(", ")
    )
}

/// The `[service]` section of a pg_service.conf, or `None` when the file has no such section.
/// libpq's format: `#` comments, no spaces around `=`, known keywords only, no nesting.
pub fn parse_service_file(text: &str, service: &str, file: &Path) -> Result<Option<Options>> {
    let mut found: Option<Options> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            if name
                .strip_prefix(service)
                .is_some_and(|r| r.starts_with(']'))
            {
                found = Some(Options::new());
            }
            continue;
        }
        let Some(section) = found.as_mut() else {
            continue;
        };
        let syntax = || {
            anyhow!(
                "syntax error in service file \"{}\", line {}",
                file.display(),
                n + 1
            )
        };
        let (key, value) = line.split_once('=').ok_or_else(syntax)?;
        if key == "service" {
            bail!(
                "nested service specifications not supported in service file \"{}\", line {}",
                file.display(),
                n + 1
            );
        }
        if !KEYWORDS.iter().any(|(k, _)| *k == key) {
            return Err(syntax());
        }
        // The first occurrence wins, as in libpq.
        section
            .entry(key.to_string())
            .or_insert_with(|| value.to_string());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::hosts::Host;
    use crate::conn::testutil::*;
    use crate::conn::Params;

    #[test]
    fn service_file_between_flags_and_env() {
        let dir = Scratch::new("service");
        let file = dir.write(
            "svc.conf",
            "# comment\n[other]\nhost=wrong\n\n[prod]\nhost=svchost\nport=6543\ndbname=svcdb\n[after]\nuser=wrong\n",
            0o644,
        );
        let file_s = file.to_str().unwrap();
        let env = [
            ("PGSERVICEFILE", file_s),
            ("PGHOST", "envhost"),
            ("PGUSER", "envuser"),
        ];
        let s = resolve(
            &args(None, Some("1"), None, Some("service=prod")),
            &env,
            None,
        )
        .unwrap();
        assert_eq!(
            s.targets[0].host,
            Host::Tcp("svchost".into()),
            "service beats env"
        );
        assert_eq!(s.targets[0].port, 1, "flags beat the service");
        assert_eq!(s.dbname, "svcdb");
        assert_eq!(s.user, "envuser", "env fills what the service leaves unset");
        // PGSERVICE selects it too.
        let env2 = [("PGSERVICEFILE", file_s), ("PGSERVICE", "prod")];
        assert_eq!(
            resolve(&Params::default(), &env2, None).unwrap().dbname,
            "svcdb"
        );
        // The system file under PGSYSCONFDIR is searched next.
        let sysdir = Scratch::new("sysconf");
        sysdir.write("pg_service.conf", "[sys]\nport=7777\n", 0o644);
        let env3 = [
            ("PGSERVICEFILE", file_s),
            ("PGSYSCONFDIR", sysdir.0.to_str().unwrap()),
            ("PGSERVICE", "sys"),
        ];
        assert_eq!(
            resolve(&Params::default(), &env3, None).unwrap().targets[0].port,
            7777
        );
        let env4 = [("PGSERVICEFILE", file_s), ("PGSYSCONFDIR", "/nonexistent")];
        let err = resolve(&args(None, None, None, Some("service=nope")), &env4, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("definition of service \"nope\" not found"),
            "{err}"
        );
    }

    #[test]
    fn service_file_syntax() {
        let f = Path::new("f.conf");
        let s = parse_service_file("[a]\n  host=x  \nport=1\nport=2\n", "a", f)
            .unwrap()
            .unwrap();
        assert_eq!(s, opts(&[("host", "x"), ("port", "1")]));
        assert!(parse_service_file("[ab]\nhost=x\n", "a", f)
            .unwrap()
            .is_none());
        let err = |t| parse_service_file(t, "a", f).unwrap_err().to_string();
        assert_eq!(
            err("[a]\nhost\n"),
            "syntax error in service file \"f.conf\", line 2"
        );
        assert_eq!(
            err("[a]\nhots=x\n"),
            "syntax error in service file \"f.conf\", line 2"
        );
        assert!(err("[a]\nservice=b\n").contains("nested service"));
        // Errors in other sections are not looked at.
        assert!(parse_service_file("[b]\ngarbage\n[a]\nport=1\n", "a", f)
            .unwrap()
            .is_some());
    }
}
