//! Passwords a person typed at a prompt, for the rest of the run. A run may connect to one
//! place more than once (a fleet's counting pass, then its acting pass; `--rollback-prepared`
//! into each database, while the database is open for it), and a person types each password
//! once; prompts of servers handled in parallel come one at a time. Keyed by where the
//! password goes (`host:port`) and the user: a pooler reached for the same server asks for its
//! own. A wrong password fails its connection, and the run with it, so it is never offered
//! again.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::Result;

static TYPED: Mutex<BTreeMap<(String, String), String>> = Mutex::new(BTreeMap::new());

/// The password for `user` at `host_port`: the one typed earlier in the run, else what
/// `ask` reads from a person (and kept). No other prompt runs meanwhile.
pub fn typed(host_port: &str, user: &str, ask: impl FnOnce() -> Result<String>) -> Result<String> {
    let mut typed = TYPED.lock().unwrap_or_else(|e| e.into_inner());
    let key = (host_port.to_string(), user.to_string());
    if let Some(password) = typed.get(&key) {
        return Ok(password.clone());
    }
    let password = ask()?;
    typed.insert(key, password.clone());
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_asked_once_per_place_and_user() {
        let asked = std::cell::Cell::new(0);
        let ask = |p: &str| {
            asked.set(asked.get() + 1);
            Ok(p.to_string())
        };
        let place = "passwords-test:5432";
        assert_eq!(typed(place, "u", || ask("one")).unwrap(), "one");
        assert_eq!(typed(place, "u", || ask("two")).unwrap(), "one");
        assert_eq!(asked.get(), 1);
        // Another user, another place (a pooler of the same host): asked again.
        assert_eq!(typed(place, "v", || ask("three")).unwrap(), "three");
        assert_eq!(
            typed("passwords-test:6432", "u", || ask("four")).unwrap(),
            "four"
        );
        assert_eq!(asked.get(), 3);
        // A prompt that failed keeps nothing.
        let failed = typed("passwords-test:1", "u", || anyhow::bail!("no terminal"));
        assert!(failed.is_err());
        assert_eq!(
            typed("passwords-test:1", "u", || ask("five")).unwrap(),
            "five"
        );
    }
}
