//! The proof of a lock record: what tells a record written by a superuser's pgkick from one
//! anybody who may comment on the object could have written.
//!
//! A superuser's lock also sets, on the locked database or role, the setting
//! `pgkick.lock_proof` (`ALTER DATABASE x SET ...`, `ALTER ROLE x SET ...`: a row of
//! `pg_db_role_setting` for that object alone) to `v1:<xid>:<sha256>`: the transaction that
//! wrote the comment and the SHA-256 of the comment's text. PostgreSQL lets only superusers
//! (and, from 15, roles a superuser granted `SET` on this parameter) set a parameter that no
//! loaded module defines, for a database or a role alike, so a database owner or a CREATEROLE
//! role cannot write one. A record is proven when the setting names exactly the comment there
//! now: its text (the hash) and its row version (`pg_shdescription.xmin` is the transaction
//! that last wrote the comment, and every new text is a new row version with a new xmin). So
//! neither a forged text under a genuine proof nor a genuine text written again later (after
//! an unlock that could not remove the proof) is proven.
//!
//! The setting is applied to the sessions of that database or role like any other (a
//! placeholder nothing reads). unlock removes it when its role may (a superuser); otherwise
//! it stays, and proves nothing once the record it names is gone.
//!
//! The xid is the top-level transaction's: lock writes the comment outside any savepoint.

use postgres_protocol::escape::{escape_identifier, escape_literal};
use sha2::{Digest, Sha256};

use super::{Kind, Label};

/// The parameter that holds the proof.
pub const SETTING: &str = "pgkick.lock_proof";

/// The proof of a comment `text` written by transaction `xid`.
pub fn value(xid: i64, text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1:{xid}:{hex}")
}

/// Two select-list expressions for the object whose oid is `oid` (an SQL expression): the
/// xmin of its comment's row (text; NULL without a comment) and its proof setting (text; NULL
/// without one).
pub fn columns(oid: &str, kind: Kind) -> String {
    let (catalog, setting_of) = match kind {
        Kind::Database => ("pg_database", "rs.setdatabase = {oid} AND rs.setrole = 0"),
        Kind::Role => ("pg_authid", "rs.setrole = {oid} AND rs.setdatabase = 0"),
    };
    let setting_of = setting_of.replace("{oid}", oid);
    format!(
        "(SELECT s.xmin::text FROM pg_catalog.pg_shdescription s \
           WHERE s.objoid = {oid} \
             AND s.classoid = 'pg_catalog.{catalog}'::pg_catalog.regclass), \
         (SELECT pg_catalog.substr(c, pg_catalog.strpos(c, '=') + 1) \
            FROM pg_catalog.pg_db_role_setting rs, pg_catalog.unnest(rs.setconfig) c \
           WHERE {setting_of} AND pg_catalog.split_part(c, '=', 1) = '{SETTING}' LIMIT 1)"
    )
}

/// The object's `pgkick.lock_proof` setting, compared with its comment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Proof {
    /// The setting is there and names exactly this comment (its text and the transaction
    /// that wrote it).
    pub matches: bool,
    /// The setting is there (matching or not): unlock removes it when it can.
    pub present: bool,
}

/// Whether `setting` proves the comment `text` whose row has `xmin`.
pub fn check(text: Option<&str>, xmin: Option<String>, setting: Option<String>) -> Proof {
    let matches = match (text, xmin.and_then(|x| x.parse::<i64>().ok()), &setting) {
        (Some(text), Some(xmin), Some(setting)) => *setting == value(xmin, text),
        _ => false,
    };
    Proof {
        matches,
        present: setting.is_some(),
    }
}

fn keyword_and_name(object: Label<'_>) -> (&'static str, String) {
    (object.0.keyword(), escape_identifier(object.1))
}

/// `ALTER <kind> <name> SET pgkick.lock_proof = '<value>';`
pub fn set_statement<'a>(object: impl Into<Label<'a>>, value: &str) -> String {
    let (keyword, name) = keyword_and_name(object.into());
    format!(
        "ALTER {keyword} {name} SET {SETTING} = {};",
        escape_literal(value).trim_start()
    )
}

/// `ALTER <kind> <name> RESET pgkick.lock_proof;`
pub fn reset_statement<'a>(object: impl Into<Label<'a>>) -> String {
    let (keyword, name) = keyword_and_name(object.into());
    format!("ALTER {keyword} {name} RESET {SETTING};")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_names_one_text_written_by_one_transaction() {
        let text = "pgkick-lock v1 {\"method\":\"nologin\"}";
        let proof = value(731, text);
        assert!(proof.starts_with("v1:731:"), "{proof}");
        assert_eq!(proof.len(), "v1:731:".len() + 64);
        let ok = check(Some(text), Some("731".into()), Some(proof.clone()));
        assert_eq!(
            ok,
            Proof {
                matches: true,
                present: true
            }
        );
        // Another text, the same text rewritten later, no comment, no setting.
        for (text, xmin, setting) in [
            (
                Some("pgkick-lock v1 {\"method\":\"forged\"}"),
                Some("731"),
                Some(&proof),
            ),
            (Some(text), Some("4294968027"), Some(&proof)),
            (Some(text), Some("732"), Some(&proof)),
            (None, None, Some(&proof)),
        ] {
            let p = check(text, xmin.map(String::from), setting.cloned());
            assert!(!p.matches && p.present, "{text:?} {xmin:?}");
        }
        assert_eq!(
            check(Some(text), Some("731".into()), None),
            Proof::default()
        );
        assert!(!check(Some(text), Some("x".into()), Some(proof)).matches);
    }

    #[test]
    fn statements_quote_the_name_and_the_value() {
        let object = Label(Kind::Role, "a \"b\"");
        assert_eq!(
            set_statement(object, "v1:1:ab"),
            "ALTER ROLE \"a \"\"b\"\"\" SET pgkick.lock_proof = 'v1:1:ab';"
        );
        assert_eq!(
            reset_statement(object),
            "ALTER ROLE \"a \"\"b\"\"\" RESET pgkick.lock_proof;"
        );
        let sql = columns("r.oid", Kind::Role);
        assert!(
            sql.contains("rs.setrole = r.oid AND rs.setdatabase = 0"),
            "{sql}"
        );
        assert!(
            sql.contains("'pg_catalog.pg_authid'::pg_catalog.regclass"),
            "{sql}"
        );
    }
}
