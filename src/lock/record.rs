//! The saved-state record: what lock writes into the object's comment so that unlock can give
//! back exactly what was there, its text form (`pgkick-lock v1 ` and one JSON object; see the
//! module documentation of `lock`), and `lock --list`, which reads every record in the cluster.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::catalog::AclEntry;
use super::Label;

/// What every comment pgkick writes starts with.
const PREFIX: &str = "pgkick-lock v1 ";
/// A record of any format version (to refuse those of a newer pgkick instead of ignoring them).
const ANY_VERSION_PREFIX: &str = "pgkick-lock ";

/// The record, as the comment's JSON holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub method: String,
    pub locked_by: String,
    pub locked_at: DateTime<Utc>,
    pub pgkick_version: String,
    pub prior: Prior,
    /// What the lock did to PgBouncer poolers in front of the database (`--pgbouncer`), for
    /// unlock to undo from anywhere. Absent in records without poolers (and in those written
    /// before the field existed), which read as they always did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poolers: Vec<PoolerEntry>,
}

/// One pooler a database lock paused (or disabled): its admin console's connection string,
/// with any password left out, and what was done to the database there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerEntry {
    pub pooler: String,
    pub action: PoolerAction,
}

/// What lock did on a pooler, and so what unlock undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolerAction {
    /// `PAUSE db`; unlock runs `RESUME db`.
    Pause,
    /// `PAUSE db`, `DISABLE db`, `KILL db`; unlock runs `ENABLE db` and `RESUME db`.
    Disable,
}

impl PoolerAction {
    /// What `--pgbouncer-disable` (`disable`) or its absence asks of each pooler.
    pub fn asked(disable: bool) -> PoolerAction {
        if disable {
            PoolerAction::Disable
        } else {
            PoolerAction::Pause
        }
    }

    /// The admin commands run for a database once its PAUSE has completed.
    pub fn after_pause(self) -> &'static [&'static str] {
        match self {
            PoolerAction::Pause => &[],
            PoolerAction::Disable => &["DISABLE", "KILL"],
        }
    }

    /// The admin commands that unlock runs for a database before its RESUME.
    pub fn before_resume(self) -> &'static [&'static str] {
        match self {
            PoolerAction::Pause => &[],
            PoolerAction::Disable => &["ENABLE"],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PoolerAction::Pause => "pause",
            PoolerAction::Disable => "disable",
        }
    }
}

/// The state before the lock. Databases keep `owner`, `datallowconn`, `datconnlimit` and `acl`
/// (the CONNECT entries only); roles keep `rolcanlogin`. Both keep the comment the record
/// replaced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datallowconn: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datconnlimit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<AclEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolcanlogin: Option<bool>,
}

impl Saved {
    /// The record in an object's comment: `None` for no comment or a comment of someone
    /// else's; an error for a record this pgkick cannot read (changing nothing is safer than
    /// overwriting it).
    pub fn decode(comment: Option<&str>, object: Label<'_>) -> Result<Option<Saved>> {
        let Some(comment) = comment else {
            return Ok(None);
        };
        if let Some(json) = comment.strip_prefix(PREFIX) {
            return serde_json::from_str(json).map(Some).with_context(|| {
                format!(
                    "the comment on {object} starts like a pgkick lock record but cannot be \
                     read; nothing was changed"
                )
            });
        }
        if comment.starts_with(ANY_VERSION_PREFIX) {
            bail!(
                "the comment on {object} is a pgkick lock record in a format this pgkick ({}) \
                 does not know; use the pgkick that wrote it; nothing was changed",
                env!("CARGO_PKG_VERSION")
            );
        }
        Ok(None)
    }

    /// The comment text that holds this record.
    pub fn encode(&self) -> String {
        let json = serde_json::to_string(self).expect("a record always serializes");
        format!("{PREFIX}{json}")
    }
}

/// One lock recorded in the cluster, for `lock --list`.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub kind: &'static str,
    pub name: String,
    pub method: Option<String>,
    pub locked_by: Option<String>,
    pub locked_at: Option<DateTime<Utc>>,
    pub pgkick_version: Option<String>,
    /// The saved state unlock gives back, as recorded.
    pub prior: Option<serde_json::Value>,
    /// The poolers the lock paused or disabled, as recorded (empty when none).
    pub poolers: Vec<PoolerEntry>,
}

impl Record {
    /// A record as `--list` shows it: whatever fields can be read, `(unreadable record)` as
    /// the method when the JSON cannot.
    fn from_comment(kind: &'static str, name: String, comment: &str) -> Record {
        let json = comment
            .strip_prefix(PREFIX)
            .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok());
        let field = |k: &str| {
            json.as_ref()
                .and_then(|j| j.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        Record {
            kind,
            name,
            method: field("method").or_else(|| Some("(unreadable record)".into())),
            locked_by: field("locked_by"),
            locked_at: field("locked_at").and_then(|t| t.parse().ok()),
            pgkick_version: field("pgkick_version"),
            prior: json.as_ref().and_then(|j| j.get("prior")).cloned(),
            poolers: json
                .as_ref()
                .and_then(|j| j.get("poolers"))
                .and_then(|p| serde_json::from_value(p.clone()).ok())
                .unwrap_or_default(),
        }
    }
}

/// Every database and role that carries a pgkick lock record.
pub fn list(client: &mut postgres::Client, _server: &crate::server::Server) -> Result<Vec<Record>> {
    let rows = client
        .query(
            "SELECT 'database', d.datname::text, s.description \
               FROM pg_catalog.pg_shdescription s \
               JOIN pg_catalog.pg_database d ON d.oid = s.objoid \
              WHERE s.classoid = 'pg_catalog.pg_database'::pg_catalog.regclass \
                AND s.description LIKE 'pgkick-lock %' \
             UNION ALL \
             SELECT 'role', r.rolname::text, s.description \
               FROM pg_catalog.pg_shdescription s \
               JOIN pg_catalog.pg_roles r ON r.oid = s.objoid \
              WHERE s.classoid = 'pg_catalog.pg_authid'::pg_catalog.regclass \
                AND s.description LIKE 'pgkick-lock %' \
             ORDER BY 1, 2",
            &[],
        )
        .context("could not read the lock records")?;
    Ok(rows
        .iter()
        .map(|row| {
            let kind = if row.get::<_, &str>(0) == "role" {
                "role"
            } else {
                "database"
            };
            Record::from_comment(kind, row.get(1), row.get(2))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Kind;

    fn label() -> Label<'static> {
        Label(Kind::Database, "d")
    }

    fn saved() -> Saved {
        Saved {
            method: "revoke-connect".into(),
            locked_by: "alice".into(),
            locked_at: "2026-01-02T03:04:05Z".parse().unwrap(),
            pgkick_version: "0.1.0".into(),
            prior: Prior {
                comment: Some("it's \\ \"x\"".into()),
                owner: Some("o".into()),
                datallowconn: Some(true),
                datconnlimit: Some(-1),
                acl: Some(vec![AclEntry {
                    grantee: None,
                    grantor: "o".into(),
                    grant_option: false,
                }]),
                rolcanlogin: None,
            },
            poolers: Vec::new(),
        }
    }

    #[test]
    fn the_record_round_trips_through_json() {
        let saved = saved();
        let json = serde_json::to_string(&saved).unwrap();
        assert!(json.contains(r#""comment":"it's \\ \"x\"""#), "{json}");
        assert!(!json.contains("rolcanlogin"));
        let back: Saved = serde_json::from_str(&json).unwrap();
        assert_eq!(back.prior.comment, saved.prior.comment);
        assert_eq!(back.prior.acl, saved.prior.acl);
    }

    #[test]
    fn the_comment_round_trips_through_the_codec() {
        let text = saved().encode();
        assert!(text.starts_with("pgkick-lock v1 {\"method\":\"revoke-connect\""));
        assert_eq!(Saved::decode(Some(&text), label()).unwrap(), Some(saved()));
    }

    #[test]
    fn comments_of_others_are_no_record_and_bad_records_are_errors() {
        assert_eq!(Saved::decode(None, label()).unwrap(), None);
        assert_eq!(Saved::decode(Some("main db"), label()).unwrap(), None);
        let err = Saved::decode(Some("pgkick-lock v1 {oops"), label()).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "the comment on database \"d\" starts like a pgkick lock record but cannot be \
                 read"
            ),
            "{err}"
        );
        let err = Saved::decode(Some("pgkick-lock v2 {}"), label()).unwrap_err();
        assert!(err.to_string().contains("in a format this pgkick"), "{err}");
    }

    #[test]
    fn list_shows_what_it_can_read() {
        let record = Record::from_comment("role", "r".into(), &saved().encode());
        assert_eq!(record.method.as_deref(), Some("revoke-connect"));
        assert_eq!(record.locked_by.as_deref(), Some("alice"));
        assert!(record.locked_at.is_some() && record.prior.is_some());
        let record = Record::from_comment("role", "r".into(), "pgkick-lock v9 ?");
        assert_eq!(record.method.as_deref(), Some("(unreadable record)"));
        assert_eq!(record.locked_by, None);
    }

    #[test]
    fn poolers_are_recorded_only_when_there_are_some_and_old_records_still_read() {
        let old = saved().encode();
        assert!(!old.contains("poolers"), "{old}");
        let mut with = saved();
        with.poolers = vec![PoolerEntry {
            pooler: "host=/tmp port=6432 user=pgbouncer".into(),
            action: PoolerAction::Disable,
        }];
        let text = with.encode();
        assert!(
            text.contains(
                r#""poolers":[{"pooler":"host=/tmp port=6432 user=pgbouncer","action":"disable"}]"#
            ),
            "{text}"
        );
        assert_eq!(Saved::decode(Some(&text), label()).unwrap(), Some(with));
        let record = Record::from_comment("database", "d".into(), &text);
        assert_eq!(record.poolers.len(), 1);
        assert_eq!(record.poolers[0].action, PoolerAction::Disable);
        assert!(Record::from_comment("database", "d".into(), &old)
            .poolers
            .is_empty());
    }
}
