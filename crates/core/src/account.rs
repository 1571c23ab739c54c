//! Hosted-account health states, and the limits that keep an account alive: its daily
//! cap and its active window.

use serde::{Deserialize, Serialize};

/// The health of an upstream account (a tenant's hosted account or a pool account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AccountState {
    /// Takes work.
    Active,
    /// New credentials, waiting for their probe: takes no work yet.
    Checking,
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
            AccountState::Checking => "checking",
            AccountState::CoolingDown { .. } => "cooling_down",
            AccountState::Disabled { .. } => "disabled",
        }
    }

    /// Whether the account may be given work at `now_ms`.
    pub fn usable_at(&self, now_ms: u64) -> bool {
        match self {
            AccountState::Active => true,
            AccountState::Checking => false,
            AccountState::CoolingDown { until_ms, .. } => now_ms >= *until_ms,
            AccountState::Disabled { .. } => false,
        }
    }
}

/// The stable code of a disabled account's reason (API.md, "States"): `by_tenant`,
/// `captcha_required`, `subscription_expired`, `usage_limited`, `invalid_credentials` or
/// `banned`, read from the reason's text (the upstream's words differ per provider).
pub fn disabled_code(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r == "disabled by tenant" {
        "by_tenant"
    } else if r.contains("captcha") || r.contains("action needed") {
        "captcha_required"
    } else if r.contains("subscription") || r.contains("plan cancelled") {
        "subscription_expired"
    } else if r.contains("usage") {
        "usage_limited"
    } else if r.contains("unauthorized")
        || r.contains("invalid")
        || r.contains("credentials")
        || r.contains("rejected the token")
    {
        "invalid_credentials"
    } else {
        "banned"
    }
}

/// At most this many submissions a day: in all modes (`all`) and per mode (relax, fast,
/// turbo); `None`: no cap of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DailyCap {
    /// All modes together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<u32>,
    /// Relax mode (and providers without modes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relax: Option<u32>,
    /// Fast mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast: Option<u32>,
    /// Turbo mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turbo: Option<u32>,
}

/// The hours of a day an account takes new tasks: from `start` up to `end` (minutes of
/// the local day; across midnight when `end < start`), in the time zone `tz` (UTC when
/// `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveWindow {
    /// Minute of the day it opens.
    pub start: u16,
    /// Minute of the day it closes.
    pub end: u16,
    /// IANA zone name (`Europe/Paris`).
    pub tz: Option<String>,
}

/// How far ahead [`ActiveWindow::offsets`] lists a zone's changes of offset.
const OFFSETS_AHEAD_MS: i64 = 2 * 366 * 86_400_000;

impl ActiveWindow {
    /// `"HH:MM"` as minutes of the day.
    pub fn parse_hhmm(s: &str) -> Option<u16> {
        let (h, m) = s.trim().split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    }

    /// Minutes of the day as `"HH:MM"`.
    pub fn hhmm(min: u16) -> String {
        format!("{:02}:{:02}", min / 60, min % 60)
    }

    /// Whether `name` is a time zone this build knows.
    pub fn zone_exists(name: &str) -> bool {
        jiff::tz::TimeZone::get(name).is_ok()
    }

    /// The zone's UTC offsets from `from_ms` for about two years, as the scheduler's
    /// scripts read them: `[minutes, from ms, minutes, from ms, minutes, …]` (the first
    /// offset holds at `from_ms`, each later one from its time on). `[0]` for UTC or an
    /// unknown zone.
    pub fn offsets(&self, from_ms: i64) -> Vec<i64> {
        let Some(tz) = self
            .tz
            .as_deref()
            .and_then(|n| jiff::tz::TimeZone::get(n).ok())
        else {
            return vec![0];
        };
        let Ok(from) = jiff::Timestamp::from_millisecond(from_ms) else {
            return vec![0];
        };
        let mut out = vec![i64::from(tz.to_offset(from).seconds() / 60)];
        for t in tz.following(from) {
            let at = t.timestamp().as_millisecond();
            if at > from_ms + OFFSETS_AHEAD_MS {
                break;
            }
            out.push(at);
            out.push(i64::from(t.offset().seconds() / 60));
        }
        out
    }

    /// The local day number (days since the epoch in the zone) at `now_ms`.
    pub fn local_day(tz: Option<&str>, now_ms: i64) -> i64 {
        let off_ms = tz
            .and_then(|n| jiff::tz::TimeZone::get(n).ok())
            .and_then(|z| {
                jiff::Timestamp::from_millisecond(now_ms)
                    .ok()
                    .map(|t| i64::from(z.to_offset(t).seconds()) * 1000)
            })
            .unwrap_or(0);
        (now_ms + off_ms).div_euclid(86_400_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_hours_and_zones() {
        assert_eq!(ActiveWindow::parse_hhmm("09:30"), Some(570));
        assert_eq!(ActiveWindow::parse_hhmm("24:00"), None);
        assert_eq!(ActiveWindow::parse_hhmm("9:30"), None);
        assert_eq!(ActiveWindow::hhmm(570), "09:30");
        assert!(ActiveWindow::zone_exists("Europe/Paris"));
        assert!(!ActiveWindow::zone_exists("Mars/Olympus"));
        // 2026-01-01T00:00Z: Paris at +60, then +120 from the end of March, and back.
        let w = ActiveWindow {
            start: 540,
            end: 1020,
            tz: Some("Europe/Paris".into()),
        };
        let o = w.offsets(1_767_225_600_000);
        assert_eq!(o[0], 60);
        assert_eq!(o[2], 120, "{o:?}");
        assert_eq!(o[1], 1_774_746_000_000, "2026-03-29T01:00Z");
        assert_eq!(o[4], 60);
        assert!(o.len() >= 9, "two years of changes: {o:?}");
        assert_eq!(
            ActiveWindow {
                tz: None,
                ..w.clone()
            }
            .offsets(0),
            vec![0]
        );
        // 23:30 UTC on 2026-01-01 is already 2 January in Paris.
        let t = 1_767_225_600_000 + 23 * 3_600_000 + 1_800_000;
        assert_eq!(
            ActiveWindow::local_day(Some("Europe/Paris"), t),
            ActiveWindow::local_day(None, t) + 1
        );
    }

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
