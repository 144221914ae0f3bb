//! Statements and their bind parameters.
//!
//! Every value pgkick sends travels as a typed bind parameter; SQL text is built only from
//! fixed fragments and `$n` placeholders. Statements are sent with `query_typed`, so each one
//! is a single round trip (no separate prepare).

use chrono::{DateTime, Utc};
use postgres::types::{ToSql, Type};

/// A bind parameter. Every one travels with an explicit type, so the statement needs no
/// separate prepare round trip.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    TextArray(Vec<String>),
    Int4Array(Vec<i32>),
    Int8(i64),
    TimestamptzArray(Vec<Option<DateTime<Utc>>>),
    OidArray(Vec<Option<u32>>),
}

impl Param {
    pub fn pg_type(&self) -> Type {
        match self {
            Param::TextArray(_) => Type::TEXT_ARRAY,
            Param::Int4Array(_) => Type::INT4_ARRAY,
            Param::Int8(_) => Type::INT8,
            Param::TimestamptzArray(_) => Type::TIMESTAMPTZ_ARRAY,
            Param::OidArray(_) => Type::OID_ARRAY,
        }
    }

    pub fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::TextArray(v) => v,
            Param::Int4Array(v) => v,
            Param::Int8(v) => v,
            Param::TimestamptzArray(v) => v,
            Param::OidArray(v) => v,
        }
    }
}

/// SQL text with its parameters, `$1` being `params[0]`.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub sql: String,
    pub params: Vec<Param>,
}

impl Query {
    /// Adds a parameter and returns its placeholder.
    pub fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    /// Parameters in the form `postgres::Client::query_typed` takes.
    pub fn typed_params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.params
            .iter()
            .map(|p| (p.as_sql(), p.pg_type()))
            .collect()
    }
}

impl Query {
    /// The statement as `--dry-run` shows it: the text, then each parameter's value.
    pub fn display(&self) -> String {
        let mut out = format!("{};", self.sql);
        for (i, p) in self.params.iter().enumerate() {
            out.push_str(&format!("\n-- ${} = {}", i + 1, p.display()));
        }
        out
    }

    pub fn run(
        &self,
        client: &mut postgres::Client,
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        client.query_typed(&self.sql, &self.typed_params())
    }
}

impl Param {
    /// A value in PostgreSQL's array literal syntax, for display only (never sent as text).
    fn display(&self) -> String {
        fn array<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
            format!("'{{{}}}'", v.iter().map(f).collect::<Vec<_>>().join(","))
        }
        fn quoted(s: &str) -> String {
            let inner = s.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{}\"", inner.replace('\'', "''"))
        }
        match self {
            Param::TextArray(v) => array(v, |s| quoted(s)),
            Param::Int4Array(v) => array(v, |n| n.to_string()),
            Param::Int8(n) => n.to_string(),
            Param::TimestamptzArray(v) => array(v, |t| match t {
                Some(t) => quoted(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                None => "NULL".into(),
            }),
            Param::OidArray(v) => array(v, |o| o.map_or("NULL".into(), |o| o.to_string())),
        }
    }
}
