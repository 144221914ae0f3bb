//! What only looks like a password, hidden at the level of the text (see `mask.rs`, whose
//! safety net this is): any `scheme://user:...@` and the value of any key that
//! percent-decodes to `password`. Its own file because the URI parser quotes what it could
//! not read through it, and `mask.rs` reads with that parser.

use std::sync::OnceLock;

use regex::Regex;

/// What a password is replaced with: a fixed string, so that not even its length shows.
pub const MASK: &str = "******";

/// Masks what only looks like a password, erring on the side of hiding (see the module
/// comment): the password of `scheme://user:password@` (up to the last `@` before a blank)
/// and the value of every `password=` key, however percent-encoded or capitalised.
pub fn hide_lookalikes(text: &str) -> String {
    // Neither pattern can match without these: most arguments (`list`, `--json`, `--db`)
    // never pay for building them, which costs more than the rest of a run's client work.
    let may_match = text.contains('=') || (text.contains(":/") && text.contains('@'));
    if !may_match {
        return text.to_string();
    }
    static PATTERNS: OnceLock<(Regex, Regex)> = OnceLock::new();
    let (credentials, key) = PATTERNS.get_or_init(|| {
        (
            // Blanks are ASCII's, as libpq's: a Unicode class would cost its automaton, and
            // a password that runs on over a non-ASCII space is hidden the further.
            Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*:/+[^ \t\r\n\x0b\x0c/:@]*:)[^ \t\r\n\x0b\x0c]*@")
                .unwrap(),
            Regex::new(r"[A-Za-z0-9_%]+[ \t\r\n\x0b\x0c]*=[ \t\r\n\x0b\x0c]*").unwrap(),
        )
    });
    let text = credentials.replace_all(text, format!("${{1}}{MASK}@"));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(m) = key.find_at(&text, pos) {
        let name = m
            .as_str()
            .trim_end_matches(|c: char| c == '=' || c.is_ascii_whitespace());
        let starts_word = text[..m.start()]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '%'));
        if !starts_word || !lossy_percent_decode(name).eq_ignore_ascii_case("password") {
            out.push_str(&text[pos..m.end()]);
            pos = m.end();
            continue;
        }
        let in_query = text[..m.start()].ends_with(['?', '&']);
        let end = m.end() + value_len(&text[m.end()..], in_query);
        out.push_str(&text[pos..m.end()]);
        out.push_str(MASK);
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

/// The length of the value that starts `rest`: in a URI's query (`in_query`), up to the next
/// `&`; otherwise a conninfo value, single-quoted (to the closing quote, or the end) or up to
/// the next unescaped blank.
fn value_len(rest: &str, in_query: bool) -> usize {
    if in_query {
        return rest.find('&').unwrap_or(rest.len());
    }
    let mut chars = rest.char_indices();
    let quoted = rest.starts_with('\'');
    if quoted {
        chars.next();
    }
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\'' if quoted => return i + 1,
            c if c.is_ascii_whitespace() && !quoted => return i,
            _ => {}
        }
    }
    rest.len()
}

/// Percent-decodes what can be decoded, keeping the rest as it is.
fn lossy_percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cannot_hold_a_password_is_kept_and_what_can_is_hidden() {
        for text in ["list", "--json", "--db", "app", "x@y", "a:/b", ""] {
            assert_eq!(hide_lookalikes(text), text);
        }
        assert_eq!(
            hide_lookalikes("see pg://u:secret@h and PassWord = 'a b' and x=1"),
            format!("see pg://u:{MASK}@h and PassWord = {MASK} and x=1")
        );
        // Blanks are ASCII's: a non-ASCII space does not end the password.
        assert_eq!(
            hide_lookalikes("pg://u:sec\u{a0}ret@h"),
            format!("pg://u:{MASK}@h")
        );
    }
}
