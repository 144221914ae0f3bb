//! Text from outside made harmless for a terminal: control characters written out the way
//! psql writes them, and JSON with DEL and C1 escaped too.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;

/// Text from outside as a terminal may show it: every control character, which could move
/// the cursor, clear the screen, retitle the window or fake output, is written out the way
/// psql writes it: C0 (except tab) and DEL as `\x1B`, C1 as `\u009B`. Backslashes stay as
/// they are (psql's choice too), so `\x1B` on the screen may also be those four characters
/// of text; JSON output keeps the exact text. Text with nothing to escape is not copied.
pub fn inert(text: &str) -> Cow<'_, str> {
    escaped(text, &['\t'])
}

/// A block of lines (dry-run statements, lock-chain trees): as [`inert`], keeping its line
/// breaks.
pub(super) fn inert_lines(text: &str) -> Cow<'_, str> {
    escaped(text, &['\t', '\n'])
}

/// SQL as a dry run shows it, before it becomes a block of lines: a line break inside a quoted
/// identifier (`"..."`, `""` inside) or a string literal (`'...'`, `''` inside) is escaped
/// (`\x0A`), so a database or role name with a line break cannot start a line of its own
/// (a fake `-- comment` or statement); line breaks between tokens stay. A `--` comment runs to
/// the end of its line and its apostrophes are prose, but a quoted identifier in it (a name
/// pgkick quoted into the comment) is one. A dollar-quoted body (`$tag$...$tag$`) is pgkick's
/// own text and is left alone. Every other control character is left for [`inert_lines`].
pub(super) fn inert_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('\n') && !sql.contains('\r') {
        return Cow::Borrowed(sql);
    }
    #[derive(PartialEq)]
    enum In {
        Code,
        Comment,
        /// In an identifier; whether it began in a comment.
        Ident(bool),
        Literal,
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut state = In::Code;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        let next = rest[c.len_utf8()..].chars().next();
        let mut step = c.len_utf8();
        match (&state, c) {
            (In::Ident(_) | In::Literal, '\n' | '\r') => {
                _ = write!(out, "\\x{:02X}", u32::from(c));
                rest = &rest[step..];
                continue;
            }
            (In::Ident(in_comment), '"') => {
                if next == Some('"') {
                    step = 2;
                } else {
                    state = if *in_comment { In::Comment } else { In::Code };
                }
            }
            (In::Literal, '\'') => {
                if next == Some('\'') {
                    step = 2;
                } else {
                    state = In::Code;
                }
            }
            (In::Comment, '\n') => state = In::Code,
            (In::Comment, '"') => state = In::Ident(true),
            (In::Code, '"') => state = In::Ident(false),
            (In::Code, '\'') => state = In::Literal,
            (In::Code, '-') if next == Some('-') => {
                state = In::Comment;
                step = 2;
            }
            (In::Code, '$') => {
                // $tag$ ... $tag$, copied as it is.
                let tag_len = rest[1..]
                    .find(|t: char| !(t.is_alphanumeric() || t == '_'))
                    .filter(|&n| rest[1 + n..].starts_with('$'))
                    .map(|n| n + 2);
                if let Some(tag_len) = tag_len {
                    let tag = &rest[..tag_len];
                    step = match rest[tag_len..].find(tag) {
                        Some(end) => tag_len + end + tag_len,
                        None => rest.len(),
                    };
                }
            }
            _ => {}
        }
        out.push_str(&rest[..step]);
        rest = &rest[step..];
    }
    Cow::Owned(out)
}

/// A table cell: as [`inert`], tab included, since its width is the terminal's to choose and
/// the columns would no longer line up.
pub(super) fn inert_cell(text: &str) -> Cow<'_, str> {
    escaped(text, &[])
}

/// `text` with every control character (C0, DEL, C1) not in `keep` escaped.
fn escaped<'a>(text: &'a str, keep: &[char]) -> Cow<'a, str> {
    // The common case, checked a byte at a time: no C0, no DEL, and no 0xC2, the first byte
    // of every C1 character in UTF-8 (also of U+00A0..U+00BF, which the slower look sorts out).
    if !text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
        return Cow::Borrowed(text);
    }
    let shown = |c: char| !c.is_control() || keep.contains(&c);
    let Some(first) = text.find(|c: char| !shown(c)) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        match u32::from(c) {
            _ if shown(c) => out.push(c),
            n @ 0..=0x7f => _ = write!(out, "\\x{n:02X}"),
            n => _ = write!(out, "\\u{n:04X}"),
        }
    }
    Cow::Owned(out)
}

/// JSON as printed. serde_json writes C0 characters as JSON escapes but DEL and C1 as they
/// are; those are escaped too (`\u009b`), so that JSON on a terminal is inert as well. Only
/// strings can hold them, and there an escape decodes to the very same text.
pub(crate) fn inert_json(json: String) -> String {
    if !json.bytes().any(|b| b == 0x7f || b == 0xc2) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if matches!(c, '\x7f'..='\u{9f}') {
            _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// `value` as JSON (pretty-printed when `pretty`), made inert.
pub(super) fn json_text<T: Serialize + ?Sized>(
    value: &T,
    pretty: bool,
) -> serde_json::Result<String> {
    let json = if pretty {
        serde_json::to_string_pretty(value)?
    } else {
        serde_json::to_string(value)?
    };
    Ok(inert_json(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inert_escapes_every_control_character_but_tab() {
        // C0, psql's way; tab kept.
        assert_eq!(inert("a\x00b\x07c\x1b[2Jd"), r"a\x00b\x07c\x1B[2Jd");
        assert_eq!(inert("line\nnext\r"), r"line\x0Anext\x0D");
        assert_eq!(inert("a\tb"), "a\tb");
        // DEL, and C1 as psql writes it (U+009B is an 8-bit CSI).
        assert_eq!(inert("x\x7fy"), r"x\x7Fy");
        assert_eq!(
            inert("\u{80}\u{85}\u{9b}2J\u{9f}"),
            r"\u0080\u0085\u009B2J\u009F"
        );
        // The issue's attack.
        assert_eq!(
            inert("/* \x1b]0;title\x07 \x1b[2J \x1b[1;31mFAKE OUTPUT\x1b[0m */ SELECT 1"),
            r"/* \x1B]0;title\x07 \x1B[2J \x1B[1;31mFAKE OUTPUT\x1B[0m */ SELECT 1"
        );
    }

    #[test]
    fn inert_leaves_printable_text_alone_and_uncopied() {
        for text in [
            "",
            "SELECT * FROM t WHERE name = 'x'",
            // Multibyte characters, those starting with 0xC2 (U+00A0..U+00BF) included.
            "café ünïcødé 日本語 🐘 \u{a0}\u{a9}\u{bf} \u{100}",
            // Backslashes are text, as in psql.
            r"\x1B is four characters",
        ] {
            assert!(
                matches!(inert(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
        // Neighbours of an escape keep their bytes.
        assert_eq!(inert("é\x1bé\u{9b}日"), r"é\x1Bé\u009B日");
        assert_eq!(inert("\u{a0}\u{85}\u{a0}"), "\u{a0}\\u0085\u{a0}");
        // Escaping twice changes nothing more: what is shown has no control characters.
        let once = inert("\x1b[2J\u{9b}\n").into_owned();
        assert_eq!(inert(&once), once);
    }

    #[test]
    fn cells_escape_tabs_and_blocks_keep_their_lines() {
        assert_eq!(inert_cell("a\tb\nc"), r"a\x09b\x0Ac");
        assert_eq!(inert_lines("a\tb\nc\r\x1b"), "a\tb\nc\\x0D\\x1B");
    }

    #[test]
    fn dry_run_sql_keeps_its_lines_but_not_a_line_break_in_a_quoted_name() {
        let name = "app\n-- fake line\nDROP DATABASE x;";
        let q = postgres_protocol::escape::escape_identifier(name);
        let sql = format!(
            "-- on pooler host=p:\nPAUSE {q};\n-- database {q} is closed by pgkick's lock\n\
             COMMENT ON DATABASE {q} IS 'it''s\nhers';\nDO $x$ BEGIN\n'$x$;\nSELECT 1;"
        );
        let shown = inert_sql(&sql);
        assert_eq!(
            shown,
            "-- on pooler host=p:\nPAUSE \"app\\x0A-- fake line\\x0ADROP DATABASE x;\";\n\
             -- database \"app\\x0A-- fake line\\x0ADROP DATABASE x;\" is closed by pgkick's \
             lock\nCOMMENT ON DATABASE \"app\\x0A-- fake line\\x0ADROP DATABASE x;\" IS \
             'it''s\\x0Ahers';\nDO $x$ BEGIN\n'$x$;\nSELECT 1;"
        );
        // A quote inside a quoted name: doubled, so still inside.
        let q = postgres_protocol::escape::escape_identifier("a\"\n-- fake");
        assert_eq!(
            inert_sql(&format!("RESUME {q};\nRESUME b;")),
            "RESUME \"a\"\"\\x0A-- fake\";\nRESUME b;"
        );
        assert!(matches!(inert_sql("SELECT 1;"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_keeps_the_exact_text_with_every_control_character_escaped() {
        let text = "a\x00\x07\x1b[2J\n\t\x7f\u{85}\u{9b}é\u{a0}日";
        for pretty in [false, true] {
            let json = json_text(&serde_json::json!({ "q": text }), pretty).unwrap();
            assert!(
                !json.chars().any(|c| c.is_control() && c != '\n'),
                "{json:?}"
            );
            assert!(
                json.contains(r"\u001b[2J") && json.contains(r"\u009b"),
                "{json}"
            );
            let back: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(back["q"], text);
        }
    }

    proptest::proptest! {
        /// Whatever the text: nothing a terminal acts on is left but tab, text without control
        /// characters is unchanged, and escaping again changes nothing.
        #[test]
        fn inert_leaves_no_control_character(text in "(\\PC|\\pC|\\x1b\\[|\\\\x){0,40}") {
            let shown = inert(&text);
            proptest::prop_assert!(!shown.chars().any(|c| c.is_control() && c != '\t'));
            if !text.chars().any(|c| c.is_control() && c != '\t') {
                proptest::prop_assert_eq!(&shown, &text);
            }
            proptest::prop_assert_eq!(&inert(&shown), &shown);
        }
    }
}
