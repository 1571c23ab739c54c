//! Hosted-account health states.

use serde::{Deserialize, Serialize};

/// The health of an upstream account (a tenant's hosted account or a pool account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AccountState {
    /// Takes work.
    Active,
    /// Rate-limited or usage-limited upstream; takes no work until `until_ms` (Unix ms).
    CoolingDown {
        /// Unix time in milliseconds when the account is usable again.
        until_ms: u64,
        /// Why (e.g. `rate_limited`, `usage_limited`, `no_fast_hours`).
        reason: String,
    },
    /// Takes no work until re-enabled: banned, subscription expired, captcha, or by its owner.
    Disabled {
        /// Why.
        reason: String,
    },
}

impl AccountState {
    /// The API name: `active`, `cooling_down` or `disabled`.
    pub fn name(&self) -> &'static str {
        match self {
            AccountState::Active => "active",
            AccountState::CoolingDown { .. } => "cooling_down",
            AccountState::Disabled { .. } => "disabled",
        }
    }

    /// Whether the account may be given work at `now_ms`.
    pub fn usable_at(&self, now_ms: u64) -> bool {
        match self {
            AccountState::Active => true,
            AccountState::CoolingDown { until_ms, .. } => now_ms >= *until_ms,
            AccountState::Disabled { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooling_down_ends_at_its_deadline() {
        let s = AccountState::CoolingDown {
            until_ms: 1000,
            reason: "rate_limited".into(),
        };
        assert!(!s.usable_at(999));
        assert!(s.usable_at(1000));
        assert!(
            !AccountState::Disabled {
                reason: "banned".into()
            }
            .usable_at(u64::MAX)
        );
    }
}
