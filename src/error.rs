//! Error kinds and the exit statuses they map to: the one place that owns the exit-status
//! contract ([`ExitStatus`], rendered into `--help` and the man page, checked against the
//! README).
//!
//! Code anywhere returns `anyhow::Error`. An error that should not exit 1 carries one of the
//! typed causes below somewhere in its chain; `exit_status` finds it. Commands that finish
//! return an `ExitStatus` (success or partial).

use std::fmt;

/// How a run ended, as the process exit code tells it: the one definition of the exit-status
/// contract. `--help` and the man page are rendered from [`ExitStatus::ALL`] and
/// [`ExitStatus::meaning`]; a test checks the README's table against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: the run did what was asked (also when nothing matched).
    Success,
    /// 1: the run failed: no connection, an SQL error, an unknown database or role; over
    /// several servers, none of them succeeded.
    Runtime,
    /// 2: the command line is wrong; found before connecting.
    Usage,
    /// 3: some sessions were not signalled or did not go away, or the databases are still held;
    /// over several servers, also: some (not all) of them failed.
    Partial,
    /// 4: a guard refused: no filter without --all, --max exceeded, confirmation declined.
    Refused,
    /// 130: SIGINT (Ctrl-C) arrived.
    Sigint,
    /// 143: SIGTERM arrived.
    Sigterm,
}

impl ExitStatus {
    /// Every status, in the order the documentation lists them.
    pub const ALL: [ExitStatus; 7] = [
        ExitStatus::Success,
        ExitStatus::Runtime,
        ExitStatus::Usage,
        ExitStatus::Partial,
        ExitStatus::Refused,
        ExitStatus::Sigint,
        ExitStatus::Sigterm,
    ];

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Runtime => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Partial => 3,
            ExitStatus::Refused => 4,
            ExitStatus::Sigint => 130,
            ExitStatus::Sigterm => 143,
        }
    }

    /// What the code means, for the documentation; flag names in backticks (the README keeps
    /// them, `--help` and the man page drop them).
    pub fn meaning(self) -> &'static str {
        match self {
            ExitStatus::Success => "success, including: nothing matched",
            ExitStatus::Runtime => {
                "runtime error: cannot connect, SQL error, unknown database or role, permission \
                 denied for the whole operation; over several servers: none of them could be \
                 reached, or every one failed"
            }
            ExitStatus::Usage => {
                "usage error: unknown flag, malformed duration, invalid regex, a connection \
                 option libpq would refuse, ... (reported before connecting, over one server or \
                 many)"
            }
            ExitStatus::Partial => {
                "partial: some matched sessions could not be signalled, or were still present \
                 after `--wait`; a lock-chain filter selected a prepared transaction, which \
                 cannot be signalled; or, after `terminate --lock`, something still keeps a \
                 locked database from being dropped; over several servers: some of them could \
                 not be reached, refused authentication or failed mid-run, or one of these \
                 partial outcomes happened on one of them"
            }
            ExitStatus::Refused => {
                "refused by a guard: no filter without `--all`, `--max` exceeded, confirmation \
                 declined"
            }
            ExitStatus::Sigint => "interrupted by SIGINT (Ctrl-C)",
            ExitStatus::Sigterm => "interrupted by SIGTERM",
        }
    }

    /// The `Exit status:` block at the end of `--help`, wrapped with a hanging indent to fit
    /// the help's 100 columns (clap would wrap it without the indent).
    pub fn help_text() -> String {
        const WIDTH: usize = 98;
        let mut text = String::from("Exit status:");
        for status in ExitStatus::ALL {
            let mut line = format!("  {:>3} ", status.code());
            for word in status.meaning().replace('`', "").split_whitespace() {
                if line.len() + 1 + word.len() > WIDTH {
                    text.push('\n');
                    text.push_str(&line);
                    line = " ".repeat(6);
                }
                line.push(' ');
                line.push_str(word);
            }
            text.push('\n');
            text.push_str(&line);
        }
        text
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// Bad input found after clap's parsing (clap's own errors already exit 2).
#[derive(Debug)]
pub struct Usage(pub String);

/// A guard refused the action: no filter without --all, --max exceeded, confirmation declined.
#[derive(Debug)]
pub struct Refused(pub String);

/// A database or role the command line names does not exist (a typo, most likely): a
/// runtime error (exit 1), and one that trying again does not mend, so `--every` ends on it
/// in its first round.
#[derive(Debug)]
pub struct Missing(pub String);

/// SIGINT or SIGTERM arrived while pgkick was waiting.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: i32,
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.signal == 15 {
            "SIGTERM"
        } else {
            "SIGINT"
        };
        write!(f, "interrupted by {name}")
    }
}
impl std::error::Error for Usage {}
impl std::error::Error for Refused {}
impl std::error::Error for Missing {}
impl std::error::Error for Interrupted {}

/// The exit status for an error: the first typed cause in the chain decides; anything else is
/// a runtime error.
pub fn exit_status(err: &anyhow::Error) -> ExitStatus {
    for cause in err.chain() {
        if cause.is::<Usage>() {
            return ExitStatus::Usage;
        }
        if cause.is::<Refused>() {
            return ExitStatus::Refused;
        }
        if let Some(i) = cause.downcast_ref::<Interrupted>() {
            return if i.signal == 15 {
                ExitStatus::Sigterm
            } else {
                ExitStatus::Sigint
            };
        }
    }
    ExitStatus::Runtime
}

/// True when the error says a name the command line gives does not exist ([`Missing`]).
pub fn is_missing(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.is::<Missing>())
}

/// True when the error is a closed stdout (`pgkick list | head`): not an error at all. A broken
/// pipe to the server (it went away) is a lost connection, not this.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    if err.chain().any(|c| c.is::<postgres::Error>()) {
        return false;
    }
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// One line for stderr: the causes joined, with line breaks folded so the message stays on
/// one line.
pub fn one_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;

    #[test]
    fn statuses_follow_the_typed_cause() {
        assert_eq!(exit_status(&anyhow!("boom")), ExitStatus::Runtime);
        assert_eq!(
            exit_status(&anyhow::Error::new(Usage("x".into()))),
            ExitStatus::Usage
        );
        let refused = anyhow::Error::new(Refused("max".into())).context("terminate");
        assert_eq!(exit_status(&refused), ExitStatus::Refused);
        let missing = anyhow::Error::new(Missing("--db x".into())).context("on none");
        assert_eq!(exit_status(&missing), ExitStatus::Runtime);
        assert!(is_missing(&missing));
        assert!(!is_missing(&refused));
        assert_eq!(
            exit_status(&anyhow::Error::new(Interrupted { signal: 2 })).code(),
            130
        );
        assert_eq!(
            exit_status(&anyhow::Error::new(Interrupted { signal: 15 })).code(),
            143
        );
    }

    #[test]
    fn the_codes_are_the_documented_ones() {
        let codes: Vec<u8> = ExitStatus::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 130, 143]);
        let help = ExitStatus::help_text();
        assert!(help.starts_with("Exit status:\n    0  success"), "{help}");
        assert!(help.contains("\n  143  interrupted by SIGTERM"), "{help}");
        assert!(!help.contains('`'), "{help}");
        assert!(help.lines().all(|l| l.len() <= 98), "{help}");
        assert!(
            help.contains("\n       the whole operation; over"),
            "{help}"
        );
    }

    #[test]
    fn messages_are_one_line() {
        let err = anyhow!("line one\nline two").context("connecting");
        assert_eq!(one_line(&err), "connecting: line one line two");
    }
}
