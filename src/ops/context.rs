//! The connection context every stage of a pipeline takes: the session on the server, what
//! is known of the server, the printer, the audit trail, and the server's member of the plan
//! (its connection parameters and settings).

use anyhow::Result;

use crate::audit::Trail;
use crate::conn::{self, PasswordPolicy, Settings};
use crate::fleet::Member;
use crate::output::Printer;
use crate::server::Server;

pub struct Context<'a> {
    pub client: postgres::Client,
    /// The server's facts, once known: the first statement of a find tells them, or they
    /// are detected when a stage needs them ([`Context::server`]).
    server: Option<Server>,
    pub printer: &'a Printer,
    pub trail: &'a Trail<'a>,
    pub member: &'a Member,
}

impl<'a> Context<'a> {
    /// Connects to the member's server (its settings' warnings shown first, a password asked
    /// for as the run's policy allows) and tells the trail who pgkick is there.
    pub fn open(member: &'a Member, printer: &'a Printer, trail: &'a Trail<'a>) -> Result<Self> {
        for w in &member.settings.warnings {
            printer.warn(w);
        }
        let mut client = connect(&member.settings, member.params.password, printer)?.client;
        trail.connected(&mut client)?;
        Ok(Context {
            client,
            server: None,
            printer,
            trail,
            member,
        })
    }

    /// The server's facts: known, or detected now (one statement).
    pub fn server(&mut self) -> Result<Server> {
        if let Some(server) = self.server {
            return Ok(server);
        }
        let server = Server::detect(&mut self.client)?;
        self.server = Some(server);
        Ok(server)
    }

    /// The server's facts when a statement has told them already.
    pub fn known_server(&self) -> Option<Server> {
        self.server
    }

    /// Keeps the facts a statement told (None tells nothing).
    pub fn learn(&mut self, server: Option<Server>) {
        if server.is_some() {
            self.server = server;
        }
    }

    /// Another connection of the run, into database `dbname` of the same server
    /// (--rollback-prepared opens one into each database with prepared transactions).
    pub fn connect_to(&self, dbname: &str) -> Result<postgres::Client> {
        let settings = Settings::resolve_for_database(&self.member.params, dbname)?;
        Ok(connect(&settings, self.member.params.password, self.printer)?.client)
    }

    /// A warning from the trail (the server refused the --server-log line), on stderr.
    pub fn warn(&self, warning: Option<String>) {
        if let Some(w) = warning {
            self.printer.warn(&w);
        }
    }
}

/// Connects with `settings`, asking a person for a password on the printer's terminal as
/// `policy` allows.
pub fn connect(
    settings: &Settings,
    policy: PasswordPolicy,
    printer: &Printer,
) -> Result<conn::Connected> {
    conn::connect_asking(settings, policy, &mut |user, host_port| {
        printer.read_password(user, host_port)
    })
}
