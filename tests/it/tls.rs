//! TLS against a real server with `ssl=on`, with certificates this test generates (rcgen): a CA,
//! a server certificate for `localhost` only signed by it, an unrelated second CA, and client
//! certificates whose CN is a role name. Every sslmode's success and failure as libpq defines
//! them, from conninfo, URI and PGSSL* variables, and client certificates required by a
//! `hostssl ... cert` pg_hba.conf line.
//!
//! Whether a session really was encrypted is read from the server log (`log_connections`):
//! "connection authorized: ... SSL enabled (protocol=...)". pgkick's session is gone by the
//! time pgkick exits, so pg_stat_ssl cannot tell.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::harness::*;

/// A certificate authority that can sign certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate and its PKCS#8 key, both PEM.
    fn sign(&self, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

/// A running server with TLS on, and the client-side files.
struct TlsServer {
    server: Server,
    /// The CA that signed the server's certificate (and `client_*`).
    ca: PathBuf,
    /// An unrelated CA.
    other_ca: PathBuf,
    /// Client-side files live here (owned by the user running pgkick).
    dir: PathBuf,
    ca_signer: Ca,
    other_signer: Ca,
}

impl TlsServer {
    /// Starts a server and turns TLS on: server.crt (CN and SAN `localhost`, no IP address),
    /// server.key (0600, owned by the server's OS user) and root.crt (the CA, for client
    /// certificates) in the data dir. `None` when this PostgreSQL build has no SSL support.
    fn start() -> TlsServer {
        let server = Server::start_with(&LOG_CONNECTIONS);
        let ca_signer = Ca::new("pgkick test CA");
        let other_signer = Ca::new("pgkick unrelated CA");
        let data = server.data_dir().to_path_buf();
        let (cert, key) = ca_signer.sign(
            "localhost",
            &["localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        write_file(&data.join("server.crt"), &cert, 0o644, Some(&data));
        write_file(&data.join("server.key"), &key, 0o600, Some(&data));
        write_file(&data.join("root.crt"), &ca_signer.pem, 0o644, Some(&data));
        // One statement each: ALTER SYSTEM cannot run inside a (implicit) transaction block.
        let mut client = server.connect(SUPERUSER);
        let enabled = [
            "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
            "ALTER SYSTEM SET ssl_key_file = 'server.key'",
            "ALTER SYSTEM SET ssl_ca_file = 'root.crt'",
            "ALTER SYSTEM SET ssl = on",
        ]
        .iter()
        .try_for_each(|sql| client.batch_execute(sql));
        drop(client);
        if let Err(e) = enabled {
            let msg = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_default();
            // Every build pgkick is tested on has SSL: one without fails, never skips.
            panic!("enabling SSL: {e} {msg}");
        }
        let mark = LogMark::now(&server);
        reload(&server);
        let log = mark.since(&server);
        assert!(
            !log.contains("SSL configuration was not reloaded") && !log.contains("could not load"),
            "the server did not load the certificates:\n{log}"
        );

        let dir = server.sock_dir().join("client");
        fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.crt");
        let other_ca = dir.join("other-ca.crt");
        write_file(&ca, &ca_signer.pem, 0o644, None);
        write_file(&other_ca, &other_signer.pem, 0o644, None);
        TlsServer {
            server,
            ca,
            other_ca,
            dir,
            ca_signer,
            other_signer,
        }
    }

    /// A client certificate for `cn` signed by `ca`, written as `<name>.crt` / `<name>.key`
    /// with the key's `mode`; returns both paths.
    fn client_cert(&self, name: &str, cn: &str, ca: &Ca, mode: u32) -> (PathBuf, PathBuf) {
        let (cert, key) = ca.sign(cn, &[], ExtendedKeyUsagePurpose::ClientAuth);
        let cert_path = self.dir.join(format!("{name}.crt"));
        let key_path = self.dir.join(format!("{name}.key"));
        write_file(&cert_path, &cert, 0o644, None);
        write_file(&key_path, &key, mode, None);
        (cert_path, key_path)
    }

    /// Runs `pgkick list --json` over TCP to `host` as `user` with `conninfo`; returns its
    /// output and whether the session the server authorized was encrypted.
    fn list(&self, host: &str, user: &str, conninfo: &str) -> (Output, Option<bool>) {
        self.list_with(pgkick_tcp(&self.server, host, user, conninfo))
    }

    fn list_with(&self, mut cmd: std::process::Command) -> (Output, Option<bool>) {
        let mark = LogMark::now(&self.server);
        let out = run(&mut cmd);
        (out, tcp_session_encrypted(&self.server, &mark))
    }

    /// Asserts the run succeeded and its session was (or was not) encrypted.
    fn assert_ok(&self, what: &str, (out, encrypted): (Output, Option<bool>), want_tls: bool) {
        assert_eq!(
            out.code,
            0,
            "{what}: expected success\n--- stderr\n{}\n--- log\n{}",
            out.stderr,
            self.server.log()
        );
        listed(&out);
        assert_eq!(
            encrypted,
            Some(want_tls),
            "{what}: encrypted? (None: no TCP session logged)"
        );
    }
}

fn root_cert(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn tls_sslmodes_follow_libpq() {
    let t = TlsServer::start();
    let su = SUPERUSER;
    let ca = root_cert(&t.ca);
    let other = root_cert(&t.other_ca);
    let ip = "127.0.0.1";

    // disable and allow stay unencrypted when the server accepts that.
    t.assert_ok("disable", t.list(ip, su, "sslmode=disable"), false);
    t.assert_ok("allow", t.list(ip, su, "sslmode=allow"), false);
    // prefer (also the default) and require encrypt without verifying anything.
    t.assert_ok("prefer", t.list(ip, su, "sslmode=prefer"), true);
    t.assert_ok("default", t.list(ip, su, ""), true);
    t.assert_ok("require", t.list(ip, su, "sslmode=require"), true);
    // libpq: with a root certificate file, require verifies the chain like verify-ca.
    let (out, _) = t.list(ip, su, &format!("sslmode=require sslrootcert={other}"));
    assert_fails_with(&out, &["SSL error", "sslmode=require"]);

    // verify-ca checks the chain, not the name (the certificate has no IP address).
    t.assert_ok(
        "verify-ca",
        t.list(ip, su, &format!("sslmode=verify-ca sslrootcert={ca}")),
        true,
    );
    let (out, _) = t.list(ip, su, &format!("sslmode=verify-ca sslrootcert={other}"));
    assert_fails_with(
        &out,
        &[
            &format!("the server's certificate was not issued by a CA in the root certificate file \"{other}\""),
            "sslmode=verify-ca",
        ],
    );
    // Without a root certificate file verifying is impossible: said before connecting.
    let (out, encrypted) = t.list(ip, su, "sslmode=verify-ca");
    let default_root = home(&t.server).join(".postgresql/root.crt");
    assert_fails_with(
        &out,
        &[
            &format!(
                "root certificate file \"{}\" does not exist",
                default_root.display()
            ),
            "sslmode=require",
        ],
    );
    assert_eq!(encrypted, None);

    // verify-full also checks the host name: localhost is in the certificate, 127.0.0.1 is not.
    t.assert_ok(
        "verify-full localhost",
        t.list(
            "localhost",
            su,
            &format!("sslmode=verify-full sslrootcert={ca}"),
        ),
        true,
    );
    let (out, _) = t.list(ip, su, &format!("sslmode=verify-full sslrootcert={ca}"));
    assert_fails_with(
        &out,
        &[
            "SSL error",
            "not valid for name \"127.0.0.1\"",
            "sslmode=verify-full",
        ],
    );
    let (out, _) = t.list(
        "localhost",
        su,
        &format!("sslmode=verify-full sslrootcert={other}"),
    );
    assert_fails_with(&out, &["SSL error", "sslmode=verify-full"]);

    // The default root certificate file, ~/.postgresql/root.crt.
    fs::create_dir_all(default_root.parent().unwrap()).unwrap();
    write_file(&default_root, &t.ca_signer.pem, 0o644, None);
    t.assert_ok(
        "verify-full with ~/.postgresql/root.crt",
        t.list("localhost", su, "sslmode=verify-full"),
        true,
    );
    fs::remove_file(&default_root).unwrap();

    // The same from a URI.
    let uri = format!(
        "postgresql://localhost:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
        t.server.port()
    );
    t.assert_ok("URI", t.list("localhost", su, &uri), true);
    let uri = format!(
        "postgresql://127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
        t.server.port()
    );
    let (out, _) = t.list("localhost", su, &uri);
    assert_fails_with(&out, &["SSL error", "sslmode=verify-full"]);

    // PGSSLMODE and PGSSLROOTCERT; a conninfo sslmode beats them.
    let mut cmd = pgkick_tcp(&t.server, "localhost", su, "");
    cmd.env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &t.ca);
    t.assert_ok("PGSSLMODE=verify-full", t.list_with(cmd), true);
    let mut cmd = pgkick_tcp(&t.server, ip, su, "");
    cmd.env("PGSSLMODE", "verify-ca")
        .env("PGSSLROOTCERT", &t.other_ca);
    let (out, _) = t.list_with(cmd);
    assert_fails_with(&out, &["SSL error", "sslmode=verify-ca"]);
    let mut cmd = pgkick_tcp(&t.server, ip, su, "");
    cmd.env("PGSSLMODE", "disable");
    t.assert_ok("PGSSLMODE=disable", t.list_with(cmd), false);
    let mut cmd = pgkick_tcp(&t.server, ip, su, "sslmode=require");
    cmd.env("PGSSLMODE", "disable");
    t.assert_ok("conninfo beats PGSSLMODE", t.list_with(cmd), true);
    let (out, _) = t.list(ip, su, "sslmode=verify-everything");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid sslmode value"),
        "{}",
        out.stderr
    );

    // Unix sockets never use TLS, whatever sslmode says (as libpq).
    let out = run(&mut server_socket_pgkick(&t.server, "sslmode=verify-full"));
    listed(&out);
}

/// pgkick on the server's unix socket with `conninfo`.
fn server_socket_pgkick(server: &Server, conninfo: &str) -> std::process::Command {
    let mut cmd = server.pgkick();
    cmd.args(["-d", conninfo, "list", "--json"]);
    cmd
}

#[test]
fn tls_client_certificates_and_hostssl_only() {
    let t = TlsServer::start();
    let role = t.server.create_role("certuser", "");
    let someone = t.server.create_role("someone", "");
    set_hba(&t.server, "hostssl all all 127.0.0.1/32 cert\n");
    let ca = root_cert(&t.ca);
    let ip = "127.0.0.1";
    let (cert, key) = t.client_cert("good", &role, &t.ca_signer, 0o600);
    let with_cert = |mode: &str, cert: &Path, key: &Path| {
        format!(
            "sslmode={mode} sslrootcert={ca} sslcert={} sslkey={}",
            cert.display(),
            key.display()
        )
    };

    // The certificate's CN names the role: in.
    t.assert_ok(
        "client certificate",
        t.list(ip, &role, &with_cert("verify-ca", &cert, &key)),
        true,
    );
    t.assert_ok(
        "client certificate, require",
        t.list(ip, &role, &with_cert("require", &cert, &key)),
        true,
    );
    // allow tries unencrypted first; the hostssl-only server refuses it; then TLS.
    t.assert_ok(
        "client certificate, allow",
        t.list(ip, &role, &with_cert("allow", &cert, &key)),
        true,
    );

    // No certificate: the server demands one.
    let (out, _) = t.list(ip, &role, &format!("sslmode=verify-ca sslrootcert={ca}"));
    assert_fails_with(&out, &["certificate"]);
    // A certificate for another role.
    let (cert2, key2) = t.client_cert("someone", &someone, &t.ca_signer, 0o600);
    let (out, _) = t.list(ip, &role, &with_cert("verify-ca", &cert2, &key2));
    assert_fails_with(&out, &["certificate authentication failed", &role]);
    // A certificate the server's CA did not sign.
    let (cert3, key3) = t.client_cert("stranger", &role, &t.other_signer, 0o600);
    let (out, _) = t.list(ip, &role, &with_cert("verify-ca", &cert3, &key3));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    // A key others may read is refused before connecting, as libpq does.
    let (cert4, key4) = t.client_cert("loose", &role, &t.ca_signer, 0o644);
    let (out, encrypted) = t.list(ip, &role, &with_cert("verify-ca", &cert4, &key4));
    assert_fails_with(
        &out,
        &[&format!(
            "private key file \"{}\" has group or world access",
            key4.display()
        )],
    );
    assert_eq!(encrypted, None);

    // The default files: ~/.postgresql/postgresql.crt and .key.
    let pg_dir = home(&t.server).join(".postgresql");
    fs::create_dir_all(&pg_dir).unwrap();
    fs::copy(&cert, pg_dir.join("postgresql.crt")).unwrap();
    fs::copy(&key, pg_dir.join("postgresql.key")).unwrap();
    write_file(&pg_dir.join("root.crt"), &t.ca_signer.pem, 0o644, None);
    t.assert_ok(
        "default client certificate files",
        t.list("localhost", &role, "sslmode=verify-full"),
        true,
    );
    let mut cmd = pgkick_tcp(&t.server, "localhost", &role, "");
    cmd.env("PGSSLMODE", "verify-full")
        .env("PGSSLCERT", &cert2)
        .env("PGSSLKEY", &key2);
    let (out, _) = t.list_with(cmd);
    assert_fails_with(&out, &["certificate authentication failed"]);

    // sslmode=disable against a hostssl-only server: one clear line, exit 1.
    let (out, _) = t.list(ip, &role, "sslmode=disable");
    assert_fails_with(
        &out,
        &[
            "connection to server at \"127.0.0.1\"",
            "no pg_hba.conf entry",
            "pg_hba.conf does not admit this connection",
        ],
    );
    let mut cmd = bare_pgkick(&t.server);
    cmd.env("PGSSLMODE", "disable").args([
        "-h",
        ip,
        "-p",
        &t.server.port().to_string(),
        "-U",
        &role,
        "list",
    ]);
    assert_fails_with(&run(&mut cmd), &["no pg_hba.conf entry"]);
}

#[test]
fn tls_required_but_the_server_has_no_ssl() {
    let server = Server::shared();
    let ip = "127.0.0.1";
    let out = run(&mut pgkick_tcp(server, ip, SUPERUSER, "sslmode=require"));
    assert_fails_with(
        &out,
        &[
            "server does not support SSL, but SSL was required",
            "sslmode=require",
        ],
    );
    // prefer and allow fall back to (or start with) an unencrypted session.
    listed(&run(&mut pgkick_tcp(
        server,
        ip,
        SUPERUSER,
        "sslmode=prefer",
    )));
    listed(&run(&mut pgkick_tcp(
        server,
        ip,
        SUPERUSER,
        "sslmode=allow",
    )));
}

/// require_auth over TLS: the session's decrypted bytes are read before rust-postgres answers
/// the server, and channel binding (SCRAM-SHA-256-PLUS) still works through that reading.
#[test]
fn tls_require_auth_scram_with_channel_binding() {
    let t = TlsServer::start();
    let role = unique_name("scramtls");
    t.server.sql(&format!(
        "SET password_encryption = 'scram-sha-256'; \
         CREATE ROLE \"{role}\" LOGIN PASSWORD 'tls horse'"
    ));
    set_hba(&t.server, "hostssl all all 127.0.0.1/32 scram-sha-256\n");
    let list = |conninfo: &str| {
        let mut cmd = pgkick_tcp(&t.server, "127.0.0.1", &role, conninfo);
        cmd.env("PGPASSWORD", "tls horse");
        t.list_with(cmd)
    };
    // PostgreSQL 10 has SCRAM but not its channel binding (SCRAM-SHA-256-PLUS, from 11).
    let binds = t.server.version_num() >= 110000;
    for conninfo in [
        "sslmode=require require_auth=scram-sha-256",
        "sslmode=require require_auth=scram-sha-256 channel_binding=require",
        // prefer: the TLS attempt is the one watched, and it succeeds.
        "require_auth=scram-sha-256 channel_binding=require",
        "sslmode=allow require_auth=!password",
    ] {
        if binds || !conninfo.contains("channel_binding=require") {
            t.assert_ok(conninfo, list(conninfo), true);
        } else {
            let (out, _) = list(conninfo);
            assert_fails_with(&out, &["channel binding required", "no password was sent"]);
        }
    }
    let (out, _) = list("sslmode=require require_auth=password,md5");
    assert_fails_with(
        &out,
        &[
            "authentication method requirement \"password,md5\" failed: server requested SASL \
           authentication",
        ],
    );
    // Allowed TLS without the password in a form required: the refusal is final, no plain
    // retry (prefer) gets around it.
    let (out, encrypted) = list("require_auth=md5");
    assert_fails_with(&out, &["server requested SASL authentication"]);
    assert_eq!(encrypted, None, "no session was authorized");
}
