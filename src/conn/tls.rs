//! TLS the way libpq's `sslmode` describes it, built on rustls (ring provider) so the binary
//! needs no OpenSSL.
//!
//! This file owns the sslmode/sslrootcert/sslcert/sslkey settings and the rustls client
//! configuration they turn into. Which attempts to make (`allow` and `prefer` may need two
//! connections) is decided by `attempts.rs`, which asks [`TlsSettings::attempts`].
//!
//! libpq rules reproduced here:
//! - `require`, `prefer` and `allow` verify nothing, except that when the root certificate file
//!   exists they verify the chain against it, exactly as `verify-ca` does.
//! - `verify-ca` checks the chain, `verify-full` also the host name; both fail when the root
//!   certificate file is missing.
//! - `sslrootcert=system` uses the operating system's trusted roots; the default sslmode then
//!   becomes `verify-full`, and a weaker explicit sslmode is an error.
//! - A client certificate is sent when `sslcert` (default `~/.postgresql/postgresql.crt`)
//!   exists; its key (`sslkey`, default `~/.postgresql/postgresql.key`) must then exist and
//!   must not be readable by group or others.
//! - TLS is never used over unix-domain sockets (libpq ignores sslmode there).

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context as TaskContext, Poll};

use anyhow::{anyhow, bail, Context, Result};
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::require_auth::AuthWatch;

/// libpq's sslmode values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => bail!(
                "invalid sslmode value: \"{s}\" (use disable, allow, prefer, require, verify-ca \
                 or verify-full)"
            ),
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// Where the trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file (`sslrootcert`, default `~/.postgresql/root.crt`).
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trusted roots.
    System,
}

/// Resolved TLS settings for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: RootCert,
    /// Client certificate; sent only when the file exists.
    pub cert: PathBuf,
    /// Private key of the client certificate.
    pub key: PathBuf,
}

/// How one connection attempt negotiates encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// No TLS at all.
    Plain,
    /// Ask for TLS; continue unencrypted if the server declines.
    TryTls,
    /// TLS or fail.
    Tls,
}

impl TlsSettings {
    /// Applies libpq's defaults to the raw values (from conninfo, URI, service file or
    /// PGSSLMODE/PGSSLROOTCERT/PGSSLCERT/PGSSLKEY). `home` locates `~/.postgresql/`.
    pub fn new(
        mode: Option<&str>,
        root_cert: Option<&str>,
        cert: Option<&str>,
        key: Option<&str>,
        home: Option<&Path>,
    ) -> Result<TlsSettings> {
        let in_home = |name: &str| match home {
            Some(h) => h.join(".postgresql").join(name),
            None => PathBuf::from("~/.postgresql").join(name),
        };
        let root_cert = match root_cert {
            Some("system") => RootCert::System,
            Some(path) => RootCert::File(PathBuf::from(path)),
            None => RootCert::File(in_home("root.crt")),
        };
        let mode = match mode {
            Some(m) => m.parse()?,
            None if root_cert == RootCert::System => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if root_cert == RootCert::System && mode != SslMode::VerifyFull {
            bail!(
                "weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \
                 \"verify-full\")"
            );
        }
        Ok(TlsSettings {
            mode,
            root_cert,
            cert: cert.map_or_else(|| in_home("postgresql.crt"), PathBuf::from),
            key: key.map_or_else(|| in_home("postgresql.key"), PathBuf::from),
        })
    }

    /// The attempts libpq makes over TCP, in order: `allow` tries plain first and TLS second,
    /// `prefer` tries TLS first and plain second (when the handshake fails or the server
    /// rejects the encrypted session).
    pub fn attempts(&self) -> &'static [Attempt] {
        match self.mode {
            SslMode::Disable => &[Attempt::Plain],
            SslMode::Allow => &[Attempt::Plain, Attempt::Tls],
            SslMode::Prefer => &[Attempt::TryTls, Attempt::Plain],
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => &[Attempt::Tls],
        }
    }

    /// What the server's certificate is checked against, libpq-style.
    pub fn verification(&self) -> Verification {
        let root_file_exists = match &self.root_cert {
            RootCert::File(p) => p.is_file(),
            RootCert::System => true,
        };
        match self.mode {
            SslMode::VerifyFull => Verification::Full,
            SslMode::VerifyCa => Verification::Chain,
            // libpq: with a root certificate file present, the weaker modes verify the chain.
            _ if root_file_exists => Verification::Chain,
            _ => Verification::None,
        }
    }

    /// Builds the rustls connector. Reads the root certificate and client certificate files.
    pub fn connector(&self) -> Result<TlsConnector> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verification = self.verification();
        let roots = match verification {
            Verification::None => None,
            Verification::Chain | Verification::Full => Some(self.load_roots()?),
        };
        let verifier = Arc::new(PgVerifier {
            roots,
            check_name: verification == Verification::Full,
            provider: provider.clone(),
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS setup")?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match self.load_client_cert()? {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).with_context(|| {
                format!(
                    "client certificate \"{}\" does not match its key \"{}\"",
                    self.cert.display(),
                    self.key.display()
                )
            })?,
            None => builder.with_no_client_auth(),
        };
        Ok(TlsConnector {
            inner: MakeRustlsConnect::new(config),
            used: Arc::new(AtomicBool::new(false)),
            watch: Arc::default(),
        })
    }

    fn load_roots(&self) -> Result<Roots> {
        let mut store = RootCertStore::empty();
        let mut pinned = Vec::new();
        match &self.root_cert {
            RootCert::System => {
                let found = rustls_native_certs::load_native_certs();
                if found.certs.is_empty() {
                    bail!(
                        "sslrootcert=system: no trusted root certificates found on this system \
                         ({} errors); point sslrootcert/PGSSLROOTCERT at a CA file",
                        found.errors.len()
                    );
                }
                store.add_parsable_certificates(found.certs);
            }
            RootCert::File(path) => {
                if !path.is_file() {
                    bail!(
                        "root certificate file \"{}\" does not exist; provide it, point \
                         sslrootcert=/PGSSLROOTCERT at your CA certificate, use \
                         sslrootcert=system, or use sslmode=require to skip server certificate \
                         verification",
                        path.display()
                    );
                }
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        anyhow!(
                            "could not read root certificate file \"{}\": {e}",
                            path.display()
                        )
                    })?;
                if certs.is_empty() {
                    bail!(
                        "root certificate file \"{}\" contains no PEM certificate",
                        path.display()
                    );
                }
                for cert in certs {
                    store.add(cert.clone()).map_err(|e| {
                        anyhow!(
                            "root certificate file \"{}\": unusable certificate: {e}",
                            path.display()
                        )
                    })?;
                    pinned.push(cert);
                }
            }
        }
        Ok(Roots { store, pinned })
    }

    fn load_client_cert(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
        // libpq skips a missing certificate file silently, even one named explicitly.
        if !self.cert.is_file() {
            return Ok(None);
        }
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                anyhow!(
                    "could not read certificate file \"{}\": {e}",
                    self.cert.display()
                )
            })?;
        let meta = std::fs::metadata(&self.key).map_err(|_| {
            anyhow!(
                "certificate present, but not private key file \"{}\"; set sslkey/PGSSLKEY",
                self.key.display()
            )
        })?;
        if !meta.is_file() {
            bail!(
                "private key file \"{}\" is not a regular file",
                self.key.display()
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // SAFETY: geteuid has no preconditions and cannot fail.
            let euid = unsafe { libc::geteuid() };
            if !key_permissions_ok(meta.mode(), meta.uid(), euid) {
                bail!(
                    "private key file \"{}\" has group or world access; file must have \
                     permissions u=rw (0600) or less if owned by the current user, or \
                     permissions u=rw,g=r (0640) or less if owned by root",
                    self.key.display()
                );
            }
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| {
            anyhow!(
                "could not load private key file \"{}\": {e} (encrypted keys are not \
                 supported)",
                self.key.display()
            )
        })?;
        Ok(Some((chain, key)))
    }
}

/// libpq's check on the client key file: owned by the user, no group or other access; or owned
/// by root, at most group-readable.
pub fn key_permissions_ok(mode: u32, owner: u32, euid: u32) -> bool {
    const GROUP_ALL: u32 = 0o070;
    const OTHER_ALL: u32 = 0o007;
    const GROUP_WX: u32 = 0o030;
    if owner == euid && mode & (GROUP_ALL | OTHER_ALL) != 0 {
        return false;
    }
    if owner == 0 && mode & (GROUP_WX | OTHER_ALL) != 0 {
        return false;
    }
    true
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Nothing (encryption only).
    None,
    /// The chain up to a trusted root (verify-ca).
    Chain,
    /// The chain and the host name (verify-full).
    Full,
}

#[derive(Debug)]
struct Roots {
    store: RootCertStore,
    /// The root file's certificates, so that a self-signed server certificate given as its
    /// own root is accepted, as OpenSSL does.
    pinned: Vec<CertificateDer<'static>>,
}

#[derive(Debug)]
struct PgVerifier {
    roots: Option<Roots>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PgVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        let chain = verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots.store,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        );
        if chain.is_err()
            && !roots
                .pinned
                .iter()
                .any(|p| p.as_ref() == end_entity.as_ref())
        {
            chain?;
        }
        if self.check_name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls connector for rust-postgres that also records whether a TLS handshake was started,
/// so that `prefer` knows whether a failed attempt was encrypted (libpq then retries plain),
/// and, under require_auth, reads the session's decrypted bytes through an [`AuthWatch`]
/// before rust-postgres does.
#[derive(Clone)]
pub struct TlsConnector {
    inner: MakeRustlsConnect,
    used: Arc<AtomicBool>,
    /// The watch for the next handshake's session, if any.
    watch: Arc<Mutex<Option<AuthWatch>>>,
}

impl TlsConnector {
    /// True once a TLS handshake has been started with this connector (or a clone of it).
    pub fn handshake_started(&self) -> bool {
        self.used.load(Ordering::SeqCst)
    }

    /// Forgets earlier handshakes, before a new attempt, and sets what watches its session.
    pub fn reset(&self, watch: Option<AuthWatch>) {
        self.used.store(false, Ordering::SeqCst);
        *self.watch.lock().unwrap_or_else(|e| e.into_inner()) = watch;
    }
}

impl<S> MakeTlsConnect<S> for TlsConnector
where
    MakeRustlsConnect: MakeTlsConnect<S>,
    <<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect as TlsConnect<S>>::Future: Unpin,
{
    type Stream = Watched<<MakeRustlsConnect as MakeTlsConnect<S>>::Stream>;
    type TlsConnect = Tracked<<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect>;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        Ok(Tracked {
            inner: self.inner.make_tls_connect(domain)?,
            used: self.used.clone(),
            watch: self.watch.clone(),
        })
    }
}

/// One handshake of a [`TlsConnector`].
pub struct Tracked<T> {
    inner: T,
    used: Arc<AtomicBool>,
    watch: Arc<Mutex<Option<AuthWatch>>>,
}

impl<S, T> TlsConnect<S> for Tracked<T>
where
    T: TlsConnect<S>,
    T::Future: Unpin,
{
    type Stream = Watched<T::Stream>;
    type Error = T::Error;
    type Future = Handshake<T::Future>;

    fn connect(self, stream: S) -> Self::Future {
        self.used.store(true, Ordering::SeqCst);
        let watch = self.watch.lock().unwrap_or_else(|e| e.into_inner()).take();
        Handshake {
            inner: self.inner.connect(stream),
            watch,
        }
    }
}

/// The handshake's future, giving a [`Watched`] session.
pub struct Handshake<F> {
    inner: F,
    watch: Option<AuthWatch>,
}

impl<F, T, E> Future for Handshake<F>
where
    F: Future<Output = Result<T, E>> + Unpin,
{
    type Output = Result<Watched<T>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let stream = ready!(Pin::new(&mut self.inner).poll(cx))?;
        Poll::Ready(Ok(Watched {
            inner: stream,
            watch: self.watch.take(),
        }))
    }
}

/// A TLS session whose decrypted bytes from the server pass an [`AuthWatch`] (when there is
/// one) before the client reads them: a refused authentication request reaches rust-postgres
/// as a read error, before it is complete, so rust-postgres never answers it.
pub struct Watched<S> {
    inner: S,
    watch: Option<AuthWatch>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Some(watch) = &mut this.watch {
            if let Err(refusal) = watch.feed(&buf.filled()[before..]) {
                buf.set_filled(before);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    refusal,
                )));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: TlsStream + Unpin> TlsStream for Watched<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: Option<&str>, root: Option<&str>) -> Result<TlsSettings> {
        TlsSettings::new(mode, root, None, None, Some(Path::new("/nonexistent-home")))
    }

    #[test]
    fn modes_parse_and_default_to_prefer() {
        assert_eq!(settings(None, None).unwrap().mode, SslMode::Prefer);
        for m in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            assert_eq!(settings(Some(m), None).unwrap().mode.to_string(), m);
        }
        let err = settings(Some("on"), None).unwrap_err().to_string();
        assert!(err.contains("invalid sslmode value: \"on\""), "{err}");
    }

    #[test]
    fn default_paths_are_under_home() {
        let s = settings(None, None).unwrap();
        assert_eq!(
            s.root_cert,
            RootCert::File("/nonexistent-home/.postgresql/root.crt".into())
        );
        assert_eq!(
            s.cert,
            PathBuf::from("/nonexistent-home/.postgresql/postgresql.crt")
        );
        assert_eq!(
            s.key,
            PathBuf::from("/nonexistent-home/.postgresql/postgresql.key")
        );
    }

    #[test]
    fn system_roots_imply_verify_full_and_refuse_weaker_modes() {
        let s = settings(None, Some("system")).unwrap();
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.verification(), Verification::Full);
        let err = settings(Some("require"), Some("system")).unwrap_err();
        assert!(err.to_string().contains("weak sslmode \"require\""));
    }

    #[test]
    fn require_verifies_the_chain_only_when_a_root_file_exists() {
        let dir = std::env::temp_dir().join(format!("pgkick-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let root = dir.join("root.crt");
        std::fs::write(&root, "not really a cert").unwrap();
        let root_s = root.to_str().unwrap();
        let with_root = settings(Some("require"), Some(root_s)).unwrap();
        assert_eq!(with_root.verification(), Verification::Chain);
        let prefer_root = settings(Some("prefer"), Some(root_s)).unwrap();
        assert_eq!(prefer_root.verification(), Verification::Chain);
        let without = settings(Some("require"), Some("/nonexistent/root.crt")).unwrap();
        assert_eq!(without.verification(), Verification::None);
        assert_eq!(
            settings(Some("verify-ca"), None).unwrap().verification(),
            Verification::Chain
        );
        // A root file without certificates is an error, not silently "no verification".
        let err = with_root.connector().err().unwrap().to_string();
        assert!(err.contains("contains no PEM certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn verify_modes_need_the_root_file() {
        let s = settings(Some("verify-full"), Some("/nonexistent/ca.pem")).unwrap();
        let err = s.connector().err().unwrap().to_string();
        assert!(
            err.contains("root certificate file \"/nonexistent/ca.pem\" does not exist"),
            "{err}"
        );
        assert!(err.contains("PGSSLROOTCERT"), "{err}");
    }

    #[test]
    fn unverified_connector_builds_without_files() {
        let s = settings(Some("require"), None).unwrap();
        let c = s.connector().unwrap();
        assert!(!c.handshake_started());
    }

    #[test]
    fn attempts_follow_libpq() {
        let a = |m| settings(Some(m), None).unwrap().attempts();
        assert_eq!(a("disable"), &[Attempt::Plain]);
        assert_eq!(a("allow"), &[Attempt::Plain, Attempt::Tls]);
        assert_eq!(a("prefer"), &[Attempt::TryTls, Attempt::Plain]);
        assert_eq!(a("verify-full"), &[Attempt::Tls]);
    }

    #[test]
    fn key_permissions() {
        assert!(key_permissions_ok(0o100600, 1000, 1000));
        assert!(key_permissions_ok(0o100400, 1000, 1000));
        assert!(!key_permissions_ok(0o100640, 1000, 1000));
        assert!(!key_permissions_ok(0o100604, 1000, 1000));
        assert!(key_permissions_ok(0o100640, 0, 1000));
        assert!(!key_permissions_ok(0o100660, 0, 1000));
        assert!(!key_permissions_ok(0o100644, 0, 1000));
    }
}
