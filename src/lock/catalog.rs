//! What the catalog says about a database or role, read inside lock's transaction (after the
//! advisory lock, so that it cannot change before the statements run): the facts the planner
//! decides on, as plain data.

use std::collections::BTreeSet;

use anyhow::{anyhow, Context, Result};
use postgres::types::Type;
use postgres::Transaction;
use postgres_protocol::escape::escape_identifier;
use serde::{Deserialize, Serialize};

use super::{Kind, Label};

/// One CONNECT entry of a database ACL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclEntry {
    /// None is PUBLIC.
    pub grantee: Option<String>,
    pub grantor: String,
    pub grant_option: bool,
}

impl AclEntry {
    /// The grantee as GRANT and REVOKE take it.
    pub fn grantee_sql(&self) -> String {
        self.grantee
            .as_deref()
            .map_or_else(|| "PUBLIC".to_string(), escape_identifier)
    }
}

/// A database or role as the catalog shows it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub kind: Kind,
    pub name: String,
    pub oid: u32,
    /// The comment: pgkick's record, someone else's text, or none.
    pub comment: Option<String>,
    pub facts: Facts,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Facts {
    Database {
        owner: String,
        allow_connections: bool,
        connection_limit: i32,
        /// pgkick is connected to this database.
        is_current: bool,
        /// Sorted.
        connect_acl: Vec<AclEntry>,
    },
    Role {
        can_login: bool,
        /// pgkick is connected as this role (current_user or session_user).
        is_self: bool,
    },
}

impl Object {
    pub fn label(&self) -> Label<'_> {
        Label(self.kind, &self.name)
    }
}

/// The oid of the database or role called exactly `name`.
pub fn resolve(tx: &mut Transaction<'_>, kind: Kind, name: &str) -> Result<Option<u32>> {
    // Compared as text: a cast to `name` would cut a long argument to 63 bytes and could
    // match another object.
    let sql = match kind {
        Kind::Database => "SELECT oid FROM pg_catalog.pg_database WHERE datname::text = $1",
        Kind::Role => "SELECT oid FROM pg_catalog.pg_roles WHERE rolname::text = $1",
    };
    let rows = tx
        .query_typed(sql, &[(&name, Type::TEXT)])
        .with_context(|| format!("could not look up {}", Label(kind, name)))?;
    Ok(rows.first().map(|r| r.get(0)))
}

/// Which of `names` are roles that exist (one statement; none for no names).
pub fn existing_roles(tx: &mut Transaction<'_>, names: &[String]) -> Result<BTreeSet<String>> {
    if names.is_empty() {
        return Ok(BTreeSet::new());
    }
    let rows = tx
        .query_typed(
            "SELECT r.rolname::text FROM pg_catalog.pg_roles r \
              WHERE r.rolname::text = ANY ($1)",
            &[(&names, Type::TEXT_ARRAY)],
        )
        .context("could not look up the roles of the saved privileges")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The object with oid `oid`, looked up earlier as `name`.
pub fn read(tx: &mut Transaction<'_>, kind: Kind, name: &str, oid: u32) -> Result<Object> {
    let gone = || {
        anyhow!(
            "{} was dropped meanwhile; nothing was changed",
            Label(kind, name)
        )
    };
    let context = || format!("could not read {}", Label(kind, name));
    match kind {
        Kind::Database => {
            let row = tx
                .query_typed(
                    "SELECT d.datname::text, d.datallowconn, d.datconnlimit, \
                            pg_catalog.shobj_description(d.oid, 'pg_database'), \
                            pg_catalog.pg_get_userbyid(d.datdba)::text, \
                            d.datname = pg_catalog.current_database() \
                       FROM pg_catalog.pg_database d WHERE d.oid = $1",
                    &[(&oid, Type::OID)],
                )
                .with_context(context)?
                .into_iter()
                .next()
                .ok_or_else(gone)?;
            let connect_acl = connect_acl(tx, oid)?;
            Ok(Object {
                kind,
                name: row.get(0),
                oid,
                comment: row.get(3),
                facts: Facts::Database {
                    owner: row.get(4),
                    allow_connections: row.get(1),
                    connection_limit: row.get(2),
                    is_current: row.get(5),
                    connect_acl,
                },
            })
        }
        Kind::Role => {
            let row = tx
                .query_typed(
                    "SELECT r.rolname::text, r.rolcanlogin, \
                            pg_catalog.shobj_description(r.oid, 'pg_authid'), \
                            r.rolname IN (current_user, session_user) \
                       FROM pg_catalog.pg_roles r WHERE r.oid = $1",
                    &[(&oid, Type::OID)],
                )
                .with_context(context)?
                .into_iter()
                .next()
                .ok_or_else(gone)?;
            Ok(Object {
                kind,
                name: row.get(0),
                oid,
                comment: row.get(2),
                facts: Facts::Role {
                    can_login: row.get(1),
                    is_self: row.get(3),
                },
            })
        }
    }
}

/// The CONNECT entries of a database's ACL (the default ACL when datacl is NULL), sorted.
pub fn connect_acl(tx: &mut Transaction<'_>, oid: u32) -> Result<Vec<AclEntry>> {
    let rows = tx
        .query_typed(
            "SELECT CASE WHEN a.grantee = 0 THEN NULL \
                         ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END, \
                    pg_catalog.pg_get_userbyid(a.grantor)::text, a.is_grantable \
               FROM pg_catalog.pg_database d, \
                    LATERAL pg_catalog.aclexplode( \
                        coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a \
              WHERE d.oid = $1 AND a.privilege_type = 'CONNECT'",
            &[(&oid, Type::OID)],
        )
        .context("could not read the database's privileges")?;
    let mut entries: Vec<AclEntry> = rows
        .iter()
        .map(|r| AclEntry {
            grantee: r.get(0),
            grantor: r.get(1),
            grant_option: r.get(2),
        })
        .collect();
    entries.sort();
    Ok(entries)
}
