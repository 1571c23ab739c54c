//! Providers, service modes and Midjourney process modes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseEnumError;

/// An upstream generative-AI service that Switchyard schedules work for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Midjourney, spoken to through Discord.
    Midjourney,
    /// Suno music generation.
    Suno,
    /// Luma Dream Machine video generation.
    Luma,
    /// ChatGPT GPTs conversations.
    Gpts,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 4] = [
        Provider::Midjourney,
        Provider::Suno,
        Provider::Luma,
        Provider::Gpts,
    ];

    /// The lowercase name used in the API (`model`), in Redis keys and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Midjourney => "midjourney",
            Provider::Suno => "suno",
            Provider::Luma => "luma",
            Provider::Gpts => "gpts",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseEnumError::new("model", s, "midjourney, suno, luma, gpts"))
    }
}

impl Provider {
    /// Other names GoAPI's documentation uses for a provider's `model`: Suno is also
    /// `music-s` and `suno/v3-chorip`.
    pub const MODEL_ALIASES: &'static [(&'static str, Provider)] = &[
        ("music-s", Provider::Suno),
        ("suno/v3-chorip", Provider::Suno),
    ];

    /// The provider a request's `model` names: its own name or an alias (any case).
    pub fn from_model_name(model: &str) -> Option<Provider> {
        let m = model.trim();
        model.parse().ok().or_else(|| {
            Provider::MODEL_ALIASES
                .iter()
                .find(|(alias, _)| alias.eq_ignore_ascii_case(m))
                .map(|(_, p)| *p)
        })
    }
}

/// Which pool of upstream accounts serves a task.
///
/// The API spells these `public` (PPU) and `private` (BYOA), as GoAPI does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceMode {
    /// Pay-per-use: the operator's pool, charged in quotas.
    #[serde(rename = "public", alias = "ppu")]
    Ppu,
    /// Bring-your-own-account: the tenant's hosted accounts, free of quota.
    #[serde(rename = "private", alias = "byoa")]
    Byoa,
}

impl ServiceMode {
    /// Both modes, PPU first.
    pub const ALL: [ServiceMode; 2] = [ServiceMode::Ppu, ServiceMode::Byoa];

    /// The API spelling: `public` or `private`.
    pub fn api_name(self) -> &'static str {
        match self {
            ServiceMode::Ppu => "public",
            ServiceMode::Byoa => "private",
        }
    }

    /// The short name used in keys and logs: `ppu` or `byoa`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceMode::Ppu => "ppu",
            ServiceMode::Byoa => "byoa",
        }
    }
}

impl fmt::Display for ServiceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceMode::Ppu => "PPU",
            ServiceMode::Byoa => "BYOA",
        })
    }
}

impl FromStr for ServiceMode {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "public" | "ppu" => Ok(ServiceMode::Ppu),
            "private" | "byoa" => Ok(ServiceMode::Byoa),
            _ => Err(ParseEnumError::new(
                "service_mode",
                s,
                "public (ppu), private (byoa)",
            )),
        }
    }
}

/// Midjourney's speed setting; it selects the price row and the account capacity used.
///
/// Providers without modes run every task as [`ProcessMode::Relax`] for capacity purposes
/// (their accounts have one capacity, reported as `default`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum ProcessMode {
    /// The slow, cheapest queue (the default).
    #[default]
    Relax,
    /// Fast hours.
    Fast,
    /// Turbo mode.
    Turbo,
}

impl ProcessMode {
    /// Every mode, slowest first.
    pub const ALL: [ProcessMode; 3] = [ProcessMode::Relax, ProcessMode::Fast, ProcessMode::Turbo];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessMode::Relax => "relax",
            ProcessMode::Fast => "fast",
            ProcessMode::Turbo => "turbo",
        }
    }
}

impl fmt::Display for ProcessMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProcessMode {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProcessMode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseEnumError::new("process_mode", s, "relax, fast, turbo"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_any_case() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().to_uppercase().parse::<Provider>().unwrap(), p);
        }
        assert_eq!("PRIVATE".parse::<ServiceMode>().unwrap(), ServiceMode::Byoa);
        assert_eq!("ppu".parse::<ServiceMode>().unwrap(), ServiceMode::Ppu);
        assert!("kling".parse::<Provider>().is_err());
    }

    #[test]
    fn service_mode_uses_api_spelling_in_json() {
        assert_eq!(
            serde_json::to_string(&ServiceMode::Byoa).unwrap(),
            "\"private\""
        );
        let m: ServiceMode = serde_json::from_str("\"public\"").unwrap();
        assert_eq!(m, ServiceMode::Ppu);
    }
}
