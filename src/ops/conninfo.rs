//! pgkick conninfo: the report of the settings and where each comes from; with --connect,
//! what the server says of the session too. When connecting fails, the report is still
//! printed before the error.

use anyhow::Result;

use super::context::connect;
use super::Part;
use crate::conn::report::{Connection, Report};
use crate::error::ExitStatus;

pub fn run(connect_too: bool, part: &Part<'_>) -> Result<ExitStatus> {
    let (member, printer) = (part.member, part.printer);
    let settings = &member.settings;
    let mut report = Report::new(settings, &member.params);
    let mut failure = None;
    if connect_too {
        match connect(settings, member.params.password, printer)
            .and_then(|mut connected| Connection::query(&mut connected))
        {
            Ok(connection) => report.connection = Some(connection),
            Err(e) => failure = Some(e),
        }
    }
    printer.print_report(&report, &report.settings, &report.lines())?;
    match failure {
        Some(e) => Err(e),
        None => Ok(ExitStatus::Success),
    }
}
