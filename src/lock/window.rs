//! A moment's opening into a database that pgkick's own lock keeps closed, for
//! `terminate --lock --rollback-prepared`: `ROLLBACK PREPARED` must run inside the prepared
//! transaction's database, and `ALLOW_CONNECTIONS false` keeps everyone out, superusers
//! included, pgkick too.
//!
//! Only for a database whose record says pgkick closed it (method `allow-connections`, open
//! before the lock); a database closed by anyone else stays closed. Under the session advisory
//! lock that lock and unlock take on the database (so neither runs meanwhile), [`open`] runs
//! `ALTER DATABASE x CONNECTION LIMIT 0` (for a non-superuser: one more than the backends in
//! it now, since the limit keeps out every non-superuser) and `ALLOW_CONNECTIONS true`, and
//! commits; pgkick connects; [`Window::close`] runs `ALLOW_CONNECTIONS false` and gives the
//! limit back, commits, and lets the advisory lock go. The record and its proof are not
//! touched (they are in the comment and a setting, not in these columns). While it is open,
//! the limit keeps out every role that is not a superuser; whoever gets in anyway (a
//! superuser, or a role that won the one slot) is in the database when the workflow looks,
//! and is terminated or reported like any other session.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use postgres::types::Type;
use postgres_protocol::escape::escape_identifier;

use super::catalog::{self, Facts};
use super::frame::{advisory_key, set_lock_timeout, sql_error};
use super::plan::method_name;
use super::record::Saved;
use super::{Kind, Label, LockMethod};

/// A database opened for one connection; [`Window::close`] closes it again.
#[must_use = "a window left open lets connections into a locked database"]
pub struct Window {
    name: String,
    oid: u32,
    /// The connection limit to give back.
    limit: i32,
    /// The limit while open.
    open_limit: i32,
    lock_timeout: Duration,
}

/// Opens `db` for one connection when pgkick's own lock keeps it closed (see the module
/// documentation); `None` when it lets connections in already. An error, having changed
/// nothing, when it is closed by someone else.
pub fn open(
    client: &mut postgres::Client,
    db: &str,
    lock_timeout: Duration,
) -> Result<Option<Window>> {
    let oid = hold(client, db, lock_timeout)?;
    let opened = open_held(client, db, oid, lock_timeout);
    if !matches!(opened, Ok(Some(_))) {
        let _ = release(client, oid);
    }
    opened
}

/// The statements [`open`] and [`Window::close`] would run for `db` (for `--dry-run`), or
/// `None` when it lets connections in; reads, changes nothing.
pub fn would_open(client: &mut postgres::Client, db: &str) -> Result<Option<Vec<String>>> {
    let mut tx = client
        .transaction()
        .context("could not start a transaction")?;
    let window = plan(&mut tx, db, None, Duration::ZERO)?;
    tx.rollback().context("could not roll back")?;
    Ok(window.map(|w| [w.open_statements(), w.close_statements()].concat()))
}

impl Window {
    /// Closes the database again and gives its connection limit back (see the module
    /// documentation).
    pub fn close(self, client: &mut postgres::Client) -> Result<()> {
        let closed = (|| -> Result<()> {
            let mut tx = client.transaction()?;
            set_lock_timeout(&mut tx, self.lock_timeout)?;
            for statement in self.close_statements() {
                tx.batch_execute(&statement)?;
            }
            Ok(tx.commit()?)
        })();
        let released = release(client, self.oid);
        closed.with_context(|| {
            format!(
                "database \"{}\" was opened for --rollback-prepared to connect and could not be \
                 closed again: it lets connections in now (CONNECTION LIMIT {}); pgkick lock \
                 --db {} closes it (its lock record is still there)",
                self.name,
                self.open_limit,
                crate::shell::word(&self.name)
            )
        })?;
        released
    }

    fn open_statements(&self) -> Vec<String> {
        let name = escape_identifier(&self.name);
        vec![
            format!("ALTER DATABASE {name} CONNECTION LIMIT {}", self.open_limit),
            format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
        ]
    }

    fn close_statements(&self) -> Vec<String> {
        let name = escape_identifier(&self.name);
        vec![
            format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
            format!("ALTER DATABASE {name} CONNECTION LIMIT {}", self.limit),
        ]
    }
}

/// Takes the session advisory lock of `db` (the key lock and unlock take in their
/// transactions), waiting up to `lock_timeout`; its oid.
fn hold(client: &mut postgres::Client, db: &str, lock_timeout: Duration) -> Result<u32> {
    let label = Label(Kind::Database, db);
    let mut tx = client
        .transaction()
        .context("could not start a transaction")?;
    set_lock_timeout(&mut tx, lock_timeout)?;
    let oid = catalog::resolve(&mut tx, Kind::Database, db)?
        .ok_or_else(|| anyhow!("{label} does not exist; nothing was changed"))?;
    // A session lock outlives the transaction that took it, commit or rollback.
    tx.query_typed(
        "SELECT pg_catalog.pg_advisory_lock($1, $2)",
        &[
            (&advisory_key(Kind::Database), Type::INT4),
            (&(oid as i32), Type::INT4),
        ],
    )
    .map_err(|e| sql_error(e, label, lock_timeout))?;
    tx.commit()
        .context("could not commit; nothing was changed")?;
    Ok(oid)
}

fn release(client: &mut postgres::Client, oid: u32) -> Result<()> {
    client
        .query_typed(
            "SELECT pg_catalog.pg_advisory_unlock($1, $2)",
            &[
                (&advisory_key(Kind::Database), Type::INT4),
                (&(oid as i32), Type::INT4),
            ],
        )
        .context("could not release an advisory lock")?;
    Ok(())
}

/// With the advisory lock held: reads the database and its record, and opens it when the
/// record allows.
fn open_held(
    client: &mut postgres::Client,
    db: &str,
    oid: u32,
    lock_timeout: Duration,
) -> Result<Option<Window>> {
    let mut tx = client
        .transaction()
        .context("could not start a transaction")?;
    set_lock_timeout(&mut tx, lock_timeout)?;
    let Some(window) = plan(&mut tx, db, Some(oid), lock_timeout)? else {
        return Ok(None);
    };
    let label = Label(Kind::Database, db);
    for statement in window.open_statements() {
        tx.batch_execute(&statement)
            .map_err(|e| sql_error(e, label, lock_timeout))?;
    }
    tx.commit()
        .context("could not commit; nothing was changed")?;
    Ok(Some(window))
}

/// The window `db` needs, from the catalog and its record: `None` when it lets connections
/// in; an error when it is closed and pgkick's record does not say pgkick closed it.
fn plan(
    tx: &mut postgres::Transaction<'_>,
    db: &str,
    oid: Option<u32>,
    lock_timeout: Duration,
) -> Result<Option<Window>> {
    let label = Label(Kind::Database, db);
    let oid = match oid {
        Some(oid) => oid,
        None => catalog::resolve(tx, Kind::Database, db)?
            .ok_or_else(|| anyhow!("{label} does not exist; nothing was changed"))?,
    };
    let object = catalog::read(tx, Kind::Database, db, oid)?;
    let Facts::Database {
        allow_connections,
        connection_limit,
        ..
    } = object.facts
    else {
        unreachable!("a database read as a database");
    };
    if allow_connections {
        return Ok(None);
    }
    let saved = Saved::decode(object.comment.as_deref(), label)?;
    let ours = saved.as_ref().is_some_and(|s| {
        s.method == method_name(LockMethod::AllowConnections) && s.prior.datallowconn == Some(true)
    });
    if !ours {
        bail!(
            "{label} does not allow connections, and not because of a pgkick lock: \
             --rollback-prepared cannot get in to roll back its prepared transactions (ALTER \
             DATABASE {} ALLOW_CONNECTIONS true lets it, if the database may be opened); \
             nothing was changed",
            escape_identifier(db)
        );
    }
    let row = tx
        .query_typed(
            "SELECT pg_catalog.current_setting('is_superuser') = 'on', \
                    (SELECT pg_catalog.count(*)::int4 FROM pg_catalog.pg_stat_activity \
                      WHERE datid = $1)",
            &[(&oid, Type::OID)],
        )
        .context("could not count the backends in the database")?
        .into_iter()
        .next()
        .context("no row counting the backends in the database")?;
    let superuser: bool = row.get(0);
    let inside: i32 = row.get(1);
    Ok(Some(Window {
        name: object.name,
        oid,
        limit: connection_limit,
        open_limit: if superuser { 0 } else { inside + 1 },
        lock_timeout,
    }))
}
