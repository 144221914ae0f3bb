//! Helpers the connection modules' unit tests share: option maps, a scratch directory that
//! removes itself, and resolving settings with a made-up environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::keywords::Options;
use super::settings::Settings;
use super::Params;

pub fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);
impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("pgkick-conn-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn resolve(args: &Params, env: &[(&str, &str)], home: Option<&Path>) -> Result<Settings> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::resolve_with(args, &|k| env.get(k).cloned(), home)
}

pub fn args(
    host: Option<&str>,
    port: Option<&str>,
    user: Option<&str>,
    db: Option<&str>,
) -> Params {
    Params {
        host: host.map(Into::into),
        port: port.map(Into::into),
        user: user.map(Into::into),
        dbname: db.map(Into::into),
        ..Params::default()
    }
}
