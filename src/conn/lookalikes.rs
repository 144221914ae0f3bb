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
    static PATTERNS: OnceLock<(Regex, Regex)> = OnceLock::new();
    let (credentials, key) = PATTERNS.get_or_init(|| {
        (
            Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*:/+[^\s/:@]*:)\S*@").unwrap(),
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
