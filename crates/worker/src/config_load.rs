//! What a Switchyard process reads at start-up: the config file it is given, the
//! `SWITCHYARD_*` / `REDIS_URL` environment and the master key. `switchyard-core` parses and
//! validates (it does no I/O); this module does the reading for every binary.

use std::path::Path;

use switchyard_core::config::{Config, ConfigError, TomlSource};
use switchyard_core::secrets::{MASTER_KEY_ENV, SecretBox, SecretError};

/// Load the configuration from the defaults, an optional TOML file and the process
/// environment, then validate.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    load_with_vars(path, env_vars())
}

/// As [`load`], with the given `(name, value)` variables instead of the process
/// environment.
pub fn load_with_vars<I>(path: Option<&Path>, vars: I) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let file = match path {
        None => None,
        Some(path) => Some((path.display().to_string(), read_file(path)?)),
    };
    let toml = file.as_ref().map(|(origin, text)| TomlSource {
        origin: origin.as_str(),
        text: text.as_str(),
    });
    Config::from_sources(toml, vars)
}

/// The sealing box under `SWITCHYARD_MASTER_KEY`.
pub fn secret_box() -> Result<SecretBox, SecretError> {
    SecretBox::new(&std::env::var(MASTER_KEY_ENV).unwrap_or_default())
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    if !path.exists() {
        return Err(ConfigError::MissingFile {
            path: path.display().to_string(),
        });
    }
    std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The process environment as text (names and values that are not UTF-8 are read
/// lossily, as the config has always read them).
fn env_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().map(|(name, value)| {
        (
            name.to_string_lossy().into_owned(),
            value.to_string_lossy().into_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, "[redis]\nkey_prefix = \"prod\"\n").unwrap();
        let c = load_with_vars(Some(&path), []).unwrap();
        assert_eq!(c.redis.key_prefix, "prod");
        let missing = dir.path().join("nope.toml");
        assert!(matches!(
            load_with_vars(Some(&missing), []),
            Err(ConfigError::MissingFile { .. })
        ));
        assert!(matches!(
            load_with_vars(Some(dir.path()), []),
            Err(ConfigError::Unreadable { .. })
        ));
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, "[scheduler]\nlease_ms = \"soon\"\n").unwrap();
        let e = load_with_vars(Some(&path), []).unwrap_err().to_string();
        assert!(e.contains("`scheduler.lease_ms`"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
    }

    #[test]
    fn no_file_and_no_variables_is_the_defaults() {
        assert_eq!(load_with_vars(None, []).unwrap(), Config::default());
    }
}
