//! What the catalog says about a database or role, read inside lock's transaction (after the
//! advisory lock, so that it cannot change before the statements run): the facts the planner
//! decides on, as plain data, the record's proof among them (see `proof.rs`).

use std::collections::BTreeMap;

use anyhow::{anyhow, Context, Result};
use postgres::types::Type;
use postgres::{Row, Transaction};
use postgres_protocol::escape::escape_identifier;
use serde::{Deserialize, Serialize};

pub use super::proof::Proof;
use super::{proof, Kind, Label};

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
    /// Whether the comment is vouched for by a proof only a superuser could write, and
    /// whether any proof setting is there at all (see `proof.rs`).
    pub proof: Proof,
    pub facts: Facts,
}

/// What unlock needs to know about a role a saved CONNECT entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleFacts {
    pub is_superuser: bool,
    /// The database's owner may `SET ROLE` to it by membership alone (not by being a
    /// superuser): the owner could make this role's grants herself.
    pub owner_can_become: bool,
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
        /// `rolsuper` and `rolreplication`: who may give such a role LOGIN back.
        is_superuser: bool,
        is_replication: bool,
    },
}

impl Object {
    pub fn label(&self) -> Label<'_> {
        Label(self.kind, &self.name)
    }
}

/// The proof's statements name the object by its kind and name.
impl<'a> From<&'a Object> for Label<'a> {
    fn from(object: &'a Object) -> Self {
        object.label()
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

/// The roles among `names` that exist, with what unlock of a database owned by `owner` needs
/// to know of each (one statement; none for no names). Membership is followed the way
/// `SET ROLE` follows it (from PostgreSQL 16, only through grants with the SET option), and a
/// superuser owner is not taken as a member of every role.
pub fn role_facts(
    tx: &mut Transaction<'_>,
    names: &[String],
    owner: &str,
    server: &crate::server::Server,
) -> Result<BTreeMap<String, RoleFacts>> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let set_option = if server.has_role_admin_rules() {
        " AND a.set_option"
    } else {
        ""
    };
    let sql = format!(
        "WITH RECURSIVE reach(oid) AS ( \
             SELECT o.oid FROM pg_catalog.pg_roles o WHERE o.rolname::text = $2 \
             UNION \
             SELECT a.roleid FROM pg_catalog.pg_auth_members a JOIN reach ON a.member = reach.oid \
              WHERE true{set_option}) \
         SELECT r.rolname::text, r.rolsuper, r.oid IN (SELECT oid FROM reach) \
           FROM pg_catalog.pg_roles r WHERE r.rolname::text = ANY ($1)"
    );
    let rows = tx
        .query_typed(&sql, &[(&names, Type::TEXT_ARRAY), (&owner, Type::TEXT)])
        .context("could not look up the roles of the saved privileges")?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                RoleFacts {
                    is_superuser: r.get(1),
                    owner_can_become: r.get(2),
                },
            )
        })
        .collect())
}

/// The object with oid `oid`, looked up earlier as `name`.
pub fn read(tx: &mut Transaction<'_>, kind: Kind, name: &str, oid: u32) -> Result<Object> {
    match kind {
        Kind::Database => {
            let sql = format!(
                "SELECT d.datname::text, d.datallowconn, d.datconnlimit, \
                        pg_catalog.shobj_description(d.oid, 'pg_database'), \
                        pg_catalog.pg_get_userbyid(d.datdba)::text, \
                        d.datname = pg_catalog.current_database(), {} \
                   FROM pg_catalog.pg_database d WHERE d.oid = $1",
                proof::columns("d.oid", Kind::Database)
            );
            let row = row_of(tx, &sql, oid, Label(kind, name))?;
            let connect_acl = connect_acl(tx, oid)?;
            let comment: Option<String> = row.get(3);
            Ok(Object {
                kind,
                name: row.get(0),
                oid,
                proof: proof::check(comment.as_deref(), row.get(6), row.get(7)),
                comment,
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
            let sql = format!(
                "SELECT r.rolname::text, r.rolcanlogin, \
                        pg_catalog.shobj_description(r.oid, 'pg_authid'), \
                        r.rolname IN (current_user, session_user), \
                        r.rolsuper, r.rolreplication, {} \
                   FROM pg_catalog.pg_roles r WHERE r.oid = $1",
                proof::columns("r.oid", Kind::Role)
            );
            let row = row_of(tx, &sql, oid, Label(kind, name))?;
            let comment: Option<String> = row.get(2);
            Ok(Object {
                kind,
                name: row.get(0),
                oid,
                proof: proof::check(comment.as_deref(), row.get(6), row.get(7)),
                comment,
                facts: Facts::Role {
                    can_login: row.get(1),
                    is_self: row.get(3),
                    is_superuser: row.get(4),
                    is_replication: row.get(5),
                },
            })
        }
    }
}

/// The one row `sql` reads of the object with oid `$1`; an error when it was dropped since it
/// was looked up.
fn row_of(tx: &mut Transaction<'_>, sql: &str, oid: u32, what: Label<'_>) -> Result<Row> {
    tx.query_typed(sql, &[(&oid, Type::OID)])
        .with_context(|| format!("could not read {what}"))?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{what} was dropped meanwhile; nothing was changed"))
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
