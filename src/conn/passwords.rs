//! Passwords a person typed at a prompt, for the rest of the run. A run over many servers
//! with `--max` or a confirmation connects to each server twice (it counts, then acts), and
//! a person types each password once; prompts of servers handled in parallel come one at a
//! time. Keyed by where the password goes (`host:port`) and the user: a pooler reached for
//! the same server asks for its own.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::Result;

static TYPED: Mutex<BTreeMap<(String, String), String>> = Mutex::new(BTreeMap::new());

/// The password for `user` at `host_port`: the one typed earlier in the run when `remember`,
/// else what `ask` reads from a person (kept when `remember`). No other prompt runs
/// meanwhile.
pub fn typed(
    host_port: &str,
    user: &str,
    remember: bool,
    ask: impl FnOnce() -> Result<String>,
) -> Result<String> {
    let mut typed = TYPED.lock().unwrap_or_else(|e| e.into_inner());
    let key = (host_port.to_string(), user.to_string());
    if remember {
        if let Some(password) = typed.get(&key) {
            return Ok(password.clone());
        }
    }
    let password = ask()?;
    if remember {
        typed.insert(key, password.clone());
    }
    Ok(password)
}
