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
pub(super) const ANY_VERSION_PREFIX: &str = "pgkick-lock ";
/// No record pgkick writes comes near this (the previous comment is the only part of any
/// size); a longer one is refused unread rather than parsed.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

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
            if comment.len() > MAX_RECORD_BYTES {
                bail!(
                    "the comment on {object} starts like a pgkick lock record but is {} bytes \
                     long, more than any record pgkick writes ({MAX_RECORD_BYTES}); nothing \
                     was changed",
                    comment.len()
                );
            }
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

    /// The comment text that holds this record. It holds no control character: serde_json
    /// escapes C0, and DEL and C1 (which it leaves raw) are escaped here, so the comment is
    /// inert wherever it is shown (`\l+` in psql, a terminal).
    pub fn encode(&self) -> String {
        let json = serde_json::to_string(self).expect("a record always serializes");
        let mut text = String::with_capacity(PREFIX.len() + json.len());
        text.push_str(PREFIX);
        for c in json.chars() {
            // Only inside strings: JSON's own syntax is printable ASCII.
            if c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) {
                text.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                text.push(c);
            }
        }
        text
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
    /// Whether a proof only a superuser can write names this record (`proof.rs`); every other
    /// field is what the record claims, written by whoever may comment on the object.
    pub proven: bool,
}

impl Record {
    /// A record as `--list` shows it: whatever fields can be read, `(unreadable record)` as
    /// the method when the JSON cannot.
    fn from_comment(kind: &'static str, name: String, comment: &str, proven: bool) -> Record {
        let json = comment
            .strip_prefix(PREFIX)
            .filter(|_| comment.len() <= MAX_RECORD_BYTES)
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
            proven,
        }
    }
}

/// Every database and role that carries a pgkick lock record.
pub fn list(client: &mut postgres::Client, _server: &crate::server::Server) -> Result<Vec<Record>> {
    // A comment longer than any record is not read whole: only whether it is one.
    let description = format!(
        "CASE WHEN pg_catalog.octet_length(s.description) <= {MAX_RECORD_BYTES} \
              THEN s.description ELSE 'pgkick-lock (too long)' END"
    );
    let sql = format!(
        "SELECT 'database', d.datname::text, {description}, {} \
           FROM pg_catalog.pg_shdescription s \
           JOIN pg_catalog.pg_database d ON d.oid = s.objoid \
          WHERE s.classoid = 'pg_catalog.pg_database'::pg_catalog.regclass \
            AND s.description LIKE 'pgkick-lock %' \
         UNION ALL \
         SELECT 'role', r.rolname::text, {description}, {} \
           FROM pg_catalog.pg_shdescription s \
           JOIN pg_catalog.pg_roles r ON r.oid = s.objoid \
          WHERE s.classoid = 'pg_catalog.pg_authid'::pg_catalog.regclass \
            AND s.description LIKE 'pgkick-lock %' \
         ORDER BY 1, 2",
        super::proof::columns("d.oid", super::Kind::Database),
        super::proof::columns("r.oid", super::Kind::Role),
    );
    let rows = client
        .query(&sql, &[])
        .context("could not read the lock records")?;
    Ok(rows
        .iter()
        .map(|row| {
            let kind = if row.get::<_, &str>(0) == "role" {
                "role"
            } else {
                "database"
            };
            let comment: String = row.get(2);
            let proof = super::proof::check(Some(&comment), row.get(3), row.get(4));
            Record::from_comment(kind, row.get(1), &comment, proof.matches)
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
        let record = Record::from_comment("role", "r".into(), &saved().encode(), false);
        assert_eq!(record.method.as_deref(), Some("revoke-connect"));
        assert_eq!(record.locked_by.as_deref(), Some("alice"));
        assert!(record.locked_at.is_some() && record.prior.is_some());
        let record = Record::from_comment("role", "r".into(), "pgkick-lock v9 ?", false);
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
        let record = Record::from_comment("database", "d".into(), &text, false);
        assert_eq!(record.poolers.len(), 1);
        assert_eq!(record.poolers[0].action, PoolerAction::Disable);
        assert!(Record::from_comment("database", "d".into(), &old, false)
            .poolers
            .is_empty());
    }

    // --- hostile records: whoever may comment on an object writes the text -----------------

    use proptest::prelude::*;

    /// Any JSON value, nested a few levels, with strings that hold control characters.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}a-z\"\\\\ ]{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A record's fields, some replaced by hostile values, some added.
    fn hostile_record() -> impl Strategy<Value = serde_json::Value> {
        (
            json_value(),
            json_value(),
            json_value(),
            "[\\x00-\\x1f\\x1b\\u{9b}a-z ]{0,20}",
            any::<u8>(),
        )
            .prop_map(|(a, b, extra, text, pick)| {
                let mut record = serde_json::to_value(saved()).unwrap();
                let fields = ["method", "locked_by", "locked_at", "prior", "poolers"];
                let object = record.as_object_mut().unwrap();
                object.insert(fields[pick as usize % fields.len()].into(), a);
                object.insert("unknown_field".into(), b);
                object.insert("locked_by".into(), serde_json::Value::String(text));
                object.insert("x".into(), extra);
                record
            })
    }

    proptest! {
        /// No text after the prefix makes decoding panic; what decodes encodes to a record
        /// that decodes to the same.
        #[test]
        fn any_text_decodes_or_is_refused(text in "\\PC{0,200}") {
            let comment = format!("{PREFIX}{text}");
            if let Ok(Some(saved)) = Saved::decode(Some(&comment), label()) {
                let again = Saved::decode(Some(&saved.encode()), label()).unwrap();
                prop_assert_eq!(again, Some(saved));
            }
            let _ = Record::from_comment("database", "d".into(), &comment, false);
        }

        /// Hostile fields (wrong types, nesting, control characters, unknown fields): refused
        /// with pgkick's message, or read with the exact text and re-encoded without the
        /// fields pgkick does not know.
        #[test]
        fn hostile_records_are_refused_or_read_exactly(record in hostile_record()) {
            let comment = format!("{PREFIX}{record}");
            match Saved::decode(Some(&comment), label()) {
                Ok(Some(saved)) => {
                    prop_assert_eq!(Some(saved.locked_by.as_str()), record["locked_by"].as_str());
                    let text = saved.encode();
                    prop_assert!(!text.contains("unknown_field"), "{}", text);
                    // JSON escapes every control character: the comment itself holds none.
                    prop_assert!(!text.chars().any(|c| c.is_control()), "{:?}", text);
                }
                Ok(None) => prop_assert!(false, "a record read as none"),
                Err(e) => prop_assert!(
                    e.to_string().contains("cannot be read; nothing was changed"),
                    "{}", e
                ),
            }
            let listed = Record::from_comment("role", "r".into(), &comment, false);
            prop_assert_eq!(listed.locked_by.as_deref(), record["locked_by"].as_str());
        }
    }

    #[test]
    fn deeply_nested_and_huge_records_are_refused_without_reading_them_whole() {
        let nested = format!("{PREFIX}{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = Saved::decode(Some(&nested), label()).unwrap_err();
        assert!(err.to_string().contains("cannot be read"), "{err}");
        let listed = Record::from_comment("database", "d".into(), &nested, false);
        assert_eq!(listed.method.as_deref(), Some("(unreadable record)"));

        let mut huge = saved();
        huge.prior.comment = Some("x".repeat(MAX_RECORD_BYTES));
        let err = Saved::decode(Some(&huge.encode()), label()).unwrap_err();
        assert!(
            err.to_string()
                .contains("more than any record pgkick writes"),
            "{err}"
        );
        let listed = Record::from_comment("database", "d".into(), &huge.encode(), false);
        assert_eq!(listed.method.as_deref(), Some("(unreadable record)"));
    }
}
