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
    /// The statement as `--dry-run` shows it: the text laid out over lines ([`pretty`]), then
    /// each parameter's value.
    pub fn display(&self) -> String {
        let mut out = format!("{};", pretty(&self.sql));
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

/// Keywords that start a line of their own, at the depth of their clause.
const CLAUSES: [&str; 9] = [
    "FROM ",
    "WHERE ",
    "LEFT JOIN ",
    "FULL JOIN ",
    "JOIN ",
    "ORDER BY ",
    "GROUP BY ",
    "UNION ALL ",
    "UNION ",
];

/// Keywords that start a line one step in: conditions and the branches of a CASE.
const CONTINUATIONS: [&str; 4] = ["AND ", "OR ", "WHEN ", "ELSE "];

/// `sql` laid out over lines for a person: each clause (FROM, WHERE, a JOIN, ORDER BY, a
/// UNION) on a line of its own, each condition and CASE branch on its own line one step in,
/// the select list one item a line, all indented by parenthesis depth. Only white space
/// between words changes (quoted text, identifiers and dollar-quoted bodies are left as
/// they are), so the text is the same statement.
pub fn pretty(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + sql.len() / 8);
    let chars: Vec<char> = sql.chars().collect();
    let mut depth = 0usize;
    // For each open depth: whether its select list is being written (between SELECT and
    // FROM), where commas start new lines.
    let mut listing: Vec<bool> = vec![false];
    let newline = |out: &mut String, indent: usize| {
        while out.ends_with(' ') {
            out.pop();
        }
        out.push('\n');
        out.push_str(&"  ".repeat(indent));
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Quoted text, identifiers and dollar quotes are copied as they are.
        if c == '\'' || c == '"' {
            let end = quoted_end(&chars, i, c);
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        if c == '$' {
            if let Some(end) = dollar_quoted_end(&chars, i) {
                out.extend(&chars[i..end]);
                i = end;
                continue;
            }
        }
        let at_word = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        let rest: String = chars[i..chars.len().min(i + 12)].iter().collect();
        if at_word {
            if let Some(k) = CLAUSES.iter().find(|k| rest.starts_with(**k)) {
                // IS [NOT] DISTINCT FROM is an operator, not a clause.
                let operator = *k == "FROM " && out.trim_end().ends_with("DISTINCT");
                if operator {
                    out.push_str(k);
                    i += k.len();
                    continue;
                }
                if !out.trim().is_empty() {
                    newline(&mut out, depth);
                }
                if *k == "FROM " {
                    listing[depth] = false;
                }
                out.push_str(k);
                i += k.len();
                continue;
            }
            if let Some(k) = CONTINUATIONS.iter().find(|k| rest.starts_with(**k)) {
                newline(&mut out, depth + 1);
                out.push_str(k);
                i += k.len();
                continue;
            }
            if rest.starts_with("SELECT ") {
                listing[depth] = true;
                out.push_str("SELECT ");
                i += "SELECT ".len();
                continue;
            }
        }
        match c {
            '(' => {
                depth += 1;
                listing.truncate(depth);
                listing.push(false);
                out.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                listing.truncate(depth + 1);
                out.push(c);
            }
            ',' if listing[depth] => {
                out.push(',');
                newline(&mut out, depth + 1);
                // The blank after the comma is the line break's.
                if chars.get(i + 1) == Some(&' ') {
                    i += 1;
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Where the quoted text starting at `start` (with `quote`) ends; a doubled quote is one
/// quote inside it.
fn quoted_end(chars: &[char], start: usize, quote: char) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

/// Where the dollar-quoted text starting at `start` ends (`$tag$ ... $tag$`); None when it is
/// no dollar quote (`$1`, a parameter).
fn dollar_quoted_end(chars: &[char], start: usize) -> Option<usize> {
    let tag_end =
        (start + 1..chars.len()).find(|&i| !(chars[i].is_alphanumeric() || chars[i] == '_'))?;
    if chars[tag_end] != '$' || chars.get(start + 1).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let tag: String = chars[start..=tag_end].iter().collect();
    let body: String = chars[tag_end + 1..].iter().collect();
    body.find(&tag)
        .map(|at| tag_end + 1 + body[..at].chars().count() + tag.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_lays_clauses_conditions_and_the_select_list_over_lines() {
        let sql = "SELECT a.pid, f(a.x, 'WHERE, FROM (') AS y FROM t a LEFT JOIN u ON u.i = a.i \
                   WHERE a.v = $1 AND (b OR c) AND a.q IN (SELECT q FROM w WHERE z) ORDER BY 1";
        assert_eq!(
            pretty(sql),
            "SELECT a.pid,\n  f(a.x, 'WHERE, FROM (') AS y\nFROM t a\nLEFT JOIN u ON u.i = a.i\n\
             WHERE a.v = $1\n  AND (b\n    OR c)\n  AND a.q IN (SELECT q\n  FROM w\n  WHERE z)\n\
             ORDER BY 1"
        );
    }

    #[test]
    fn pretty_changes_only_white_space_outside_quotes() {
        for sql in [
            "SELECT 1",
            "SELECT \"FROM \"\"x\"\" WHERE\" FROM \"a, b\"",
            "DO $pgkick$ BEGIN RAISE LOG 'AND %', 1; END $pgkick$",
            "SELECT CASE WHEN x THEN 'a' WHEN y THEN 'b' ELSE 'c' END FROM t WHERE $2 = $10",
            "SELECT 1 FROM t WHERE a IS NOT DISTINCT FROM b",
        ] {
            let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(squash(&pretty(sql)), squash(sql), "{sql}");
        }
        assert_eq!(
            pretty("SELECT 1 FROM t WHERE a IS NOT DISTINCT FROM b"),
            "SELECT 1\nFROM t\nWHERE a IS NOT DISTINCT FROM b"
        );
        let dollar = "DO $pgkick$ BEGIN RAISE LOG 'x'; END $pgkick$";
        assert_eq!(
            pretty(dollar),
            dollar,
            "a dollar-quoted body is left as it is"
        );
    }
}
