//! The commands pgkick's messages tell a person to run, written so that a shell takes each
//! word as it is meant: names and connection strings come from the catalog and from lock
//! records, which others may have written.

/// `text` as one word for a POSIX shell: as it is when it holds only characters no shell
/// treats specially, otherwise in single quotes (a `'` inside written `'\''`).
pub fn word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,/:@".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_a_shell_takes_as_they_are() {
        assert_eq!(word("shop_1"), "shop_1");
        assert_eq!(word("host=a port=1"), "'host=a port=1'");
        assert_eq!(word("it's; rm -rf /"), r"'it'\''s; rm -rf /'");
        assert_eq!(word("$(id)"), "'$(id)'");
        assert_eq!(word(""), "''");
    }
}
