//! Subscription plans and the plan table: caps, retention, features, failover.
//!
//! Every number here is taken from the public pricing page in `shared/seed/goapi-pricing.txt`.
//! Where the page's check-mark columns did not survive (the Midjourney output features,
//! reports, the captcha resolver), the reading chosen is written next to the field and in
//! `docs/plans-and-prices.md`. Enterprise is "contact us" on the page: it starts as a copy
//! of Premium and is meant to be overridden in config (`[plans.enterprise]`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseEnumError;
use crate::provider::{Provider, ServiceMode};

/// A tenant's subscription plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// Free, the default plan.
    Hobbyist,
    /// $8/month.
    Developer,
    /// $50/month.
    Premium,
    /// Custom: values come from config.
    Enterprise,
}

impl Plan {
    /// Every plan, lowest first.
    pub const ALL: [Plan; 4] = [
        Plan::Hobbyist,
        Plan::Developer,
        Plan::Premium,
        Plan::Enterprise,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Hobbyist => "hobbyist",
            Plan::Developer => "developer",
            Plan::Premium => "premium",
            Plan::Enterprise => "enterprise",
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Plan {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Plan::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                ParseEnumError::new("plan", s, "hobbyist, developer, premium, enterprise")
            })
    }
}

/// Whether a feature is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Offered.
    Yes,
    /// Not offered.
    No,
    /// Offered when the hosted account itself supports it ("Follow luma account"): the
    /// upstream decides, and a refusal fails the task as `upstream_rejected`.
    FollowsAccount,
}

impl Access {
    /// True unless the feature is refused outright.
    pub fn allowed(self) -> bool {
        !matches!(self, Access::No)
    }
}

/// PPU concurrency caps per provider: how many of the tenant's PPU tasks may be
/// `processing` at once. `None` means the plan sets no cap (the pool's capacity bounds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PpuCaps {
    /// Midjourney "concurrent jobs" (3 / 9 / 30).
    pub midjourney: Option<u32>,
    /// Suno "generation concurrency" (2 / 10 / 30).
    pub suno: Option<u32>,
    /// Luma: the page sets no cap.
    pub luma: Option<u32>,
    /// GPTs "active conversations" (— / 10 / 200).
    pub gpts: Option<u32>,
}

impl PpuCaps {
    /// The cap for one provider.
    pub fn get(&self, provider: Provider) -> Option<u32> {
        match provider {
            Provider::Midjourney => self.midjourney,
            Provider::Suno => self.suno,
            Provider::Luma => self.luma,
            Provider::Gpts => self.gpts,
        }
    }
}

/// Suno task kinds a plan may use (the Suno table's rows; "N/A" is `false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SunoFeatures {
    /// music-create generation.
    pub create: bool,
    /// music-continue generation (`generate_music_custom` with `continue_clip_id`).
    #[serde(rename = "continue")]
    pub continue_: bool,
    /// lyric synthesis.
    pub lyrics: bool,
    /// audio upload.
    pub upload: bool,
}

/// The Luma feature grid for one plan and one service mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LumaFeatures {
    /// Text-to-video generation.
    pub video_generation: Access,
    /// Whether quota beyond the 150 free-trial quotas may be bought (PPU); Hobbyist: no.
    pub beyond_free_trial: bool,
    /// `key_frames.frame0` image.
    pub image_to_video: Access,
    /// `extend_video`.
    pub extend: Access,
    /// `remove_watermark`.
    pub remove_watermark: Access,
    /// `key_frames.frame0` + `frame1`.
    pub start_end_frame: Access,
}

/// Midjourney result and request features that differ per plan.
///
/// The seed lists these rows without its check marks; the reading here is GoAPI's own
/// table of optional output fields per plan and pool (see `docs/plans-and-prices.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MjFeatures {
    /// `input.skip_prompt_check` (Premium and above).
    pub skip_prompt_check: bool,
    /// Optional output of a task that ran on the PPU pool.
    pub ppu_output: MjOutputFields,
    /// Optional output of a task that ran on the tenant's own accounts.
    pub byoa_output: MjOutputFields,
}

/// The optional Midjourney output fields one plan gives in one pool. `image_url` and
/// `image_urls` are given on every plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MjOutputFields {
    /// `output.task_progress` (and `progress`) while processing, and `task.progress`
    /// webhooks.
    pub task_progress: bool,
    /// `output.discord_image_url` and `output.temporary_image_urls`: the upstream's own
    /// links.
    pub discord_image_url: bool,
    /// `output.intermediate_image_urls`, the previews shown while the job ran.
    pub intermediate_image_urls: Grant,
}

/// Whether an output field is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// Given.
    Yes,
    /// Not given.
    No,
    /// Given to tenants the operator approved ("upon approval only").
    OnApproval,
}

impl Grant {
    /// Whether a tenant gets it (`approved`: the operator approved the tenant).
    pub fn given(self, approved: bool) -> bool {
        match self {
            Grant::Yes => true,
            Grant::No => false,
            Grant::OnApproval => approved,
        }
    }
}

impl MjFeatures {
    /// The optional output fields of a task that ran in `pool`.
    pub fn output(&self, pool: ServiceMode) -> MjOutputFields {
        match pool {
            ServiceMode::Ppu => self.ppu_output,
            ServiceMode::Byoa => self.byoa_output,
        }
    }
}

/// Everything one plan grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanLimits {
    /// Subscription price in US cents per month; `None` is "contact us".
    pub monthly_price_cents: Option<u32>,
    /// PPU concurrency caps.
    pub ppu_caps: PpuCaps,
    /// How long a finished task stays fetchable, in hours (48 h / 7 d / 30 d).
    pub task_log_retention_hours: u32,
    /// "Auto failover to PPU" for BYOA tasks.
    pub auto_failover: bool,
    /// "Using bot_id param": pin a task to one hosted account.
    pub bot_id: bool,
    /// "Automatic Captcha Resolver" for hosted Midjourney accounts (Premium and above).
    pub captcha_resolver: bool,
    /// "Grafana Dashboard (Data Report)": days of report; 0 = none (Developer 1, Premium 7).
    pub report_days: u32,
    /// GPTs on the PPU pool ("only available for Developer Plan or Above").
    pub gpts_ppu: bool,
    /// Tasks a tenant may have waiting (staged or pending) for a provider: this many
    /// times the provider's PPU cap…
    pub queue_per_cap: u32,
    /// …and never fewer than this (so a Hobbyist with its own accounts can queue 100).
    pub queue_min: u32,
    /// Midjourney per-plan features.
    pub midjourney: MjFeatures,
    /// Suno task kinds.
    pub suno: SunoFeatures,
    /// Luma on PPU.
    pub luma_ppu: LumaFeatures,
    /// Luma on BYOA.
    pub luma_byoa: LumaFeatures,
}

impl PlanLimits {
    /// The PPU cap of one provider (`None`: no cap).
    pub fn ppu_cap(&self, provider: Provider) -> Option<u32> {
        self.ppu_caps.get(provider)
    }

    /// The most tasks a tenant may have waiting for `provider` (`None`: no limit, for a
    /// provider without a PPU cap on this plan).
    pub fn max_queued(&self, provider: Provider) -> Option<u32> {
        self.ppu_cap(provider)
            .map(|c| c.saturating_mul(self.queue_per_cap).max(self.queue_min))
    }

    /// Task-log retention in seconds.
    pub fn retention_secs(&self) -> u64 {
        u64::from(self.task_log_retention_hours) * 3600
    }

    /// The Luma grid for a service mode.
    pub fn luma(&self, mode: ServiceMode) -> &LumaFeatures {
        match mode {
            ServiceMode::Ppu => &self.luma_ppu,
            ServiceMode::Byoa => &self.luma_byoa,
        }
    }
}

/// The plan table: one [`PlanLimits`] per plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanTable {
    /// Free plan.
    pub hobbyist: PlanLimits,
    /// $8/month.
    pub developer: PlanLimits,
    /// $50/month.
    pub premium: PlanLimits,
    /// Custom; a copy of Premium until configured.
    pub enterprise: PlanLimits,
}

impl PlanTable {
    /// The limits of one plan.
    pub fn get(&self, plan: Plan) -> &PlanLimits {
        match plan {
            Plan::Hobbyist => &self.hobbyist,
            Plan::Developer => &self.developer,
            Plan::Premium => &self.premium,
            Plan::Enterprise => &self.enterprise,
        }
    }

    /// The lowest plan for which `allows` holds, for "needs the X plan" messages.
    pub fn lowest_plan_where(&self, allows: impl Fn(&PlanLimits) -> bool) -> Option<Plan> {
        Plan::ALL.into_iter().find(|p| allows(self.get(*p)))
    }

    /// The table exactly as the seed states it.
    pub fn seed() -> Self {
        let no_luma = LumaFeatures {
            video_generation: Access::Yes,
            beyond_free_trial: false,
            image_to_video: Access::No,
            extend: Access::No,
            remove_watermark: Access::No,
            start_end_frame: Access::No,
        };
        let hobbyist = PlanLimits {
            monthly_price_cents: Some(0),
            ppu_caps: PpuCaps {
                midjourney: Some(3),
                suno: Some(2),
                luma: None,
                gpts: None,
            },
            task_log_retention_hours: 48,
            auto_failover: false,
            bot_id: false,
            captcha_resolver: false,
            report_days: 0,
            gpts_ppu: false,
            queue_per_cap: 10,
            queue_min: 100,
            // GoAPI's table, "Free": nothing optional on PPU; the upstream's links on BYOA.
            midjourney: MjFeatures {
                skip_prompt_check: false,
                ppu_output: MjOutputFields {
                    task_progress: false,
                    discord_image_url: false,
                    intermediate_image_urls: Grant::No,
                },
                byoa_output: MjOutputFields {
                    task_progress: false,
                    discord_image_url: true,
                    intermediate_image_urls: Grant::No,
                },
            },
            suno: SunoFeatures {
                create: true,
                continue_: false,
                lyrics: false,
                upload: false,
            },
            // "Hobbyist: Yes (free 150) | No access beyond the free trial quotas | No | No | No | No"
            luma_ppu: no_luma,
            // "Hobbyist-BYOA: $0 per video | Yes | Yes | No | No"
            luma_byoa: LumaFeatures {
                video_generation: Access::Yes,
                beyond_free_trial: true,
                image_to_video: Access::Yes,
                extend: Access::Yes,
                remove_watermark: Access::No,
                start_end_frame: Access::No,
            },
        };
        let developer = PlanLimits {
            monthly_price_cents: Some(800),
            ppu_caps: PpuCaps {
                midjourney: Some(9),
                suno: Some(10),
                luma: None,
                gpts: Some(10),
            },
            task_log_retention_hours: 7 * 24,
            report_days: 1,
            gpts_ppu: true,
            // "Creator": progress everywhere; previews with BYOA.
            midjourney: MjFeatures {
                skip_prompt_check: false,
                ppu_output: MjOutputFields {
                    task_progress: true,
                    discord_image_url: false,
                    intermediate_image_urls: Grant::No,
                },
                byoa_output: MjOutputFields {
                    task_progress: true,
                    discord_image_url: true,
                    intermediate_image_urls: Grant::Yes,
                },
            },
            suno: SunoFeatures {
                create: true,
                continue_: true,
                lyrics: true,
                upload: true,
            },
            // "Developer: 30 quotas/video | Yes | Yes | No | Yes"
            luma_ppu: LumaFeatures {
                video_generation: Access::Yes,
                beyond_free_trial: true,
                image_to_video: Access::Yes,
                extend: Access::Yes,
                remove_watermark: Access::No,
                start_end_frame: Access::Yes,
            },
            // "Developer-BYOA: $0 | Yes | Yes | Follow luma account | Yes"
            luma_byoa: LumaFeatures {
                video_generation: Access::Yes,
                beyond_free_trial: true,
                image_to_video: Access::Yes,
                extend: Access::Yes,
                remove_watermark: Access::FollowsAccount,
                start_end_frame: Access::Yes,
            },
            ..hobbyist.clone()
        };
        let premium = PlanLimits {
            monthly_price_cents: Some(5000),
            ppu_caps: PpuCaps {
                midjourney: Some(30),
                suno: Some(30),
                luma: None,
                gpts: Some(200),
            },
            task_log_retention_hours: 30 * 24,
            auto_failover: true,
            bot_id: true,
            captcha_resolver: true,
            report_days: 7,
            // "Pro": the upstream's links on PPU too; PPU previews upon approval.
            midjourney: MjFeatures {
                skip_prompt_check: true,
                ppu_output: MjOutputFields {
                    task_progress: true,
                    discord_image_url: true,
                    intermediate_image_urls: Grant::OnApproval,
                },
                byoa_output: developer.midjourney.byoa_output,
            },
            // "Premium: 30 quotas/video | Yes | Yes | Yes | Yes"
            luma_ppu: LumaFeatures {
                remove_watermark: Access::Yes,
                ..developer.luma_ppu
            },
            ..developer.clone()
        };
        let enterprise = PlanLimits {
            monthly_price_cents: None,
            ..premium.clone()
        };
        PlanTable {
            hobbyist,
            developer,
            premium,
            enterprise,
        }
    }
}

impl Default for PlanTable {
    fn default() -> Self {
        PlanTable::seed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_in_any_case() {
        assert_eq!("PREMIUM".parse::<Plan>().unwrap(), Plan::Premium);
        assert_eq!(" Developer ".parse::<Plan>().unwrap(), Plan::Developer);
        let err = "gold".parse::<Plan>().unwrap_err();
        assert!(err.to_string().contains("hobbyist, developer"));
    }

    #[test]
    fn lowest_plan_where_names_the_first_plan_that_allows() {
        let t = PlanTable::seed();
        assert_eq!(
            t.lowest_plan_where(|l| l.auto_failover),
            Some(Plan::Premium)
        );
        assert_eq!(t.lowest_plan_where(|l| l.gpts_ppu), Some(Plan::Developer));
        assert_eq!(t.lowest_plan_where(|l| l.report_days > 30), None);
    }
}
