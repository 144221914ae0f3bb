//! Error kinds and the exit codes they map to: the one place that owns the exit-code contract.
//!
//! Code anywhere returns `anyhow::Error`. An error that should not exit 1 carries one of the
//! typed causes below somewhere in its chain; `exit_code` finds it.

use std::fmt;

/// Exit codes, as documented in README.md, `--help` and the man page.
pub mod code {
    pub const SUCCESS: u8 = 0;
    pub const RUNTIME: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const PARTIAL: u8 = 3;
    pub const REFUSED: u8 = 4;
    pub const SIGINT: u8 = 130;
    pub const SIGTERM: u8 = 143;
}

/// Bad input found after clap's parsing (clap's own errors already exit 2).
#[derive(Debug)]
pub struct Usage(pub String);

/// A guard refused the action: no filter without --all, --max exceeded, confirmation declined.
#[derive(Debug)]
pub struct Refused(pub String);

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
impl std::error::Error for Interrupted {}

/// The exit code for an error: the first typed cause in the chain decides; anything else is a
/// runtime error.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Usage>() {
            return code::USAGE;
        }
        if cause.is::<Refused>() {
            return code::REFUSED;
        }
        if let Some(i) = cause.downcast_ref::<Interrupted>() {
            return if i.signal == 15 {
                code::SIGTERM
            } else {
                code::SIGINT
            };
        }
    }
    code::RUNTIME
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
    fn codes_follow_the_typed_cause() {
        assert_eq!(exit_code(&anyhow!("boom")), code::RUNTIME);
        assert_eq!(
            exit_code(&anyhow::Error::new(Usage("x".into()))),
            code::USAGE
        );
        let refused = anyhow::Error::new(Refused("max".into())).context("terminate");
        assert_eq!(exit_code(&refused), code::REFUSED);
        assert_eq!(
            exit_code(&anyhow::Error::new(Interrupted { signal: 2 })),
            130
        );
        assert_eq!(
            exit_code(&anyhow::Error::new(Interrupted { signal: 15 })),
            143
        );
    }

    #[test]
    fn messages_are_one_line() {
        let err = anyhow!("line one\nline two").context("connecting");
        assert_eq!(one_line(&err), "connecting: line one line two");
    }
}
