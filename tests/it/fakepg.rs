//! A fake PostgreSQL server on loopback for the attacks on credentials: it accepts
//! connections, answers an `SSLRequest` with `N`, reads the startup packet, asks for a password
//! the way it was told (cleartext, MD5 or SCRAM's first step) and records everything a client
//! gives it. A test then asserts what pgkick sent (nothing, ideally), not what it printed.
//!
//! Only the first exchange of the protocol is spoken: after the client's answer to the
//! authentication request the fake sends an `ErrorResponse` and closes, so a client that sent
//! a password fails instead of hanging.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How the fake asks for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// AuthenticationCleartextPassword (3).
    Cleartext,
    /// AuthenticationMD5Password (5) with a fixed salt.
    Md5,
    /// AuthenticationSASL (10) offering SCRAM-SHA-256.
    Scram,
    /// AuthenticationOk (0) at once: no authentication at all.
    Nothing,
}

/// What one client connection told the fake.
#[derive(Debug, Clone, Default)]
pub struct Visit {
    /// The startup packet's parameters (user, database, application_name, ...).
    pub params: Vec<(String, String)>,
    /// The body of the client's answer to the authentication request, as text (a cleartext
    /// password, `md5...`, or SCRAM's client-first message), when it sent one.
    pub answer: Option<String>,
}

impl Visit {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A fake server listening on 127.0.0.1 until dropped (the listener thread ends with the
/// process; connections after the drop are refused by the closed flag).
pub struct FakePg {
    port: u16,
    visits: Arc<Mutex<Vec<Visit>>>,
}

impl FakePg {
    pub fn start(ask: Ask) -> FakePg {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let visits = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&visits);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let record = Arc::clone(&record);
                thread::spawn(move || {
                    let visit = serve(stream, ask);
                    record.lock().unwrap().push(visit);
                });
            }
        });
        FakePg { port, visits }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host=127.0.0.1 port=N`.
    pub fn conninfo(&self) -> String {
        format!("host=127.0.0.1 port={}", self.port)
    }

    /// Every connection so far, once its exchange has ended.
    pub fn visits(&self) -> Vec<Visit> {
        // A connection in progress is recorded when it ends: give it a moment.
        thread::sleep(Duration::from_millis(100));
        self.visits.lock().unwrap().clone()
    }

    /// Every answer a client gave to the authentication request.
    pub fn answers(&self) -> Vec<String> {
        self.visits().into_iter().filter_map(|v| v.answer).collect()
    }
}

fn read_exact(stream: &mut TcpStream, n: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// One connection: startup (after any SSLRequest or GSSENCRequest, refused), the
/// authentication request, the client's answer, an error.
fn serve(mut stream: TcpStream, ask: Ask) -> Visit {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut visit = Visit::default();
    let body = loop {
        let Some(len) = read_exact(&mut stream, 4) else {
            return visit;
        };
        let len = be32(&len) as usize;
        if !(8..=100_000).contains(&len) {
            return visit;
        }
        let Some(body) = read_exact(&mut stream, len - 4) else {
            return visit;
        };
        match be32(&body) {
            // SSLRequest, GSSENCRequest: no.
            80877103 | 80877104 => {
                if stream.write_all(b"N").is_err() {
                    return visit;
                }
            }
            _ => break body,
        }
    };
    let mut fields = body[4..]
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        if k.is_empty() {
            break;
        }
        visit.params.push((k, v));
    }
    let request: Vec<u8> = match ask {
        Ask::Cleartext => auth(3, &[]),
        Ask::Md5 => auth(5, b"salt"),
        Ask::Scram => auth(10, b"SCRAM-SHA-256\0\0"),
        Ask::Nothing => auth(0, &[]),
    };
    if stream.write_all(&request).is_err() {
        return visit;
    }
    if ask != Ask::Nothing {
        // 'p': PasswordMessage / SASLInitialResponse.
        if let Some(head) = read_exact(&mut stream, 5) {
            let len = be32(&head[1..]) as usize;
            if head[0] == b'p' && (4..=100_000).contains(&len) {
                if let Some(body) = read_exact(&mut stream, len - 4) {
                    let text = String::from_utf8_lossy(&body);
                    visit.answer = Some(text.trim_end_matches('\0').to_string());
                }
            }
        }
    }
    let _ = stream.write_all(&error("28P01", "fake server: authentication refused"));
    visit
}

/// An Authentication message with `code` and `extra` bytes.
fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
    let mut m = vec![b'R'];
    m.extend(((8 + extra.len()) as u32).to_be_bytes());
    m.extend(code.to_be_bytes());
    m.extend(extra);
    m
}

/// An ErrorResponse: severity FATAL, the SQLSTATE and the message.
fn error(code: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        fields.push(tag);
        fields.extend(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut m = vec![b'E'];
    m.extend(((4 + fields.len()) as u32).to_be_bytes());
    m.extend(fields);
    m
}

/// The fake records what a real client sends: a check of the fake itself, so that a test
/// asserting "nothing was sent" cannot pass because the fake heard nothing.
#[test]
fn fakepg_records_the_password_a_client_sends() {
    let fake = FakePg::start(Ask::Cleartext);
    let err = postgres::Config::new()
        .host("127.0.0.1")
        .port(fake.port())
        .user("victim")
        .dbname("pgbouncer")
        .password("s3cret")
        .connect(postgres::NoTls)
        .err()
        .expect("the fake refuses every login");
    let message = err.as_db_error().map(|e| e.message().to_string());
    assert_eq!(
        message.as_deref(),
        Some("fake server: authentication refused"),
        "{err:?}"
    );
    let visits = fake.visits();
    assert_eq!(visits.len(), 1, "{visits:?}");
    assert_eq!(visits[0].param("user"), Some("victim"));
    assert_eq!(visits[0].param("database"), Some("pgbouncer"));
    assert_eq!(fake.answers(), vec!["s3cret".to_string()]);
}
