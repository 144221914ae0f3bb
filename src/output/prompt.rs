//! What pgkick asks a person on the terminal: whether to act on the sessions shown, and a
//! password (without echo; the passwords typed are kept by `conn::passwords`).

use std::io::{self, BufRead, IsTerminal, Write};

use chrono::Utc;

use super::inert::inert;
use super::table::{rows_table, Tabular};
use super::Printer;

impl Printer {
    /// True when a person can answer a prompt: stdin and stderr are terminals.
    pub fn interactive(&self) -> bool {
        self.captured.is_none() && io::stdin().is_terminal() && self.stderr_tty
    }

    /// Asks for `user`'s password on the terminal, without echo: psql's prompt, with the
    /// server it is for (`host:port`), since one run may reach servers and poolers. What was
    /// typed serves the run's other connections to the same place as the same user (as psql's
    /// `\connect` reuses it): the connections into each database that `--rollback-prepared`
    /// opens, a fleet's counting and acting passes.
    pub fn read_password(&self, user: &str, host_port: &str) -> anyhow::Result<String> {
        crate::conn::typed_password(host_port, user, || {
            self.clear_progress();
            let prompt = format!("Password for user {user} on {host_port}: ");
            rpassword::prompt_password(inert(&prompt).as_ref())
                .map_err(|e| anyhow::anyhow!("could not read the password from the terminal: {e}"))
        })
    }

    /// Shows `items` on stderr and asks `question`; true only for an explicit yes.
    pub fn confirm<T: Tabular>(&self, items: &[T], question: &str) -> io::Result<bool> {
        let table = self.table(items, true, true);
        eprintln!("{table}");
        ask(question)
    }

    /// Many servers: shows every server's targets on stderr, grouped by server, and asks
    /// `question` once; true only for an explicit yes.
    pub fn confirm_fleet<T: Tabular>(
        &self,
        groups: &[(String, Vec<T>)],
        question: &str,
    ) -> io::Result<bool> {
        let now = Utc::now();
        let rows = groups
            .iter()
            .flat_map(|(label, items)| {
                items.iter().map(move |i| {
                    let mut row = vec![label.clone()];
                    row.extend(i.cells(now));
                    row
                })
            })
            .collect();
        let mut headers = vec!["server"];
        headers.extend(T::headers());
        eprintln!(
            "{}",
            rows_table(headers, rows, true, true, T::CUT_LAST_WHEN_PIPED)
        );
        ask(question)
    }
}

/// Asks `question` on stderr; true only for an explicit yes on stdin.
fn ask(question: &str) -> io::Result<bool> {
    eprint!("{} [y/N] ", inert(question));
    io::stderr().flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}
