//! The price table: what a task costs in its provider's quota, and how credits convert.
//!
//! All numbers come from `shared/seed/goapi-pricing.txt`. BYOA costs 0 everywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseEnumError;
use crate::provider::{ProcessMode, Provider, ServiceMode};
use crate::task::{GptsTask, LumaTask, MjAction, MjTask, MjVersion, SunoTask, TaskSpec, Upscaler};

/// A balance a tenant holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKind {
    /// GoAPI credits ($1 = 700).
    Credits,
    /// Midjourney quotas ($1 = 200).
    MjQuota,
    /// Suno quotas ($1 = 250).
    SunoQuota,
    /// Luma (Dream Machine) quotas ($1 = 100).
    LumaQuota,
    /// GPTs quotas ($1 = 1000).
    GptsQuota,
}

impl QuotaKind {
    /// Every kind.
    pub const ALL: [QuotaKind; 5] = [
        QuotaKind::Credits,
        QuotaKind::MjQuota,
        QuotaKind::SunoQuota,
        QuotaKind::LumaQuota,
        QuotaKind::GptsQuota,
    ];

    /// The snake_case name used in the API and in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::Credits => "credits",
            QuotaKind::MjQuota => "mj_quota",
            QuotaKind::SunoQuota => "suno_quota",
            QuotaKind::LumaQuota => "luma_quota",
            QuotaKind::GptsQuota => "gpts_quota",
        }
    }

    /// The quota a provider's tasks are charged in.
    pub fn of(provider: Provider) -> QuotaKind {
        match provider {
            Provider::Midjourney => QuotaKind::MjQuota,
            Provider::Suno => QuotaKind::SunoQuota,
            Provider::Luma => QuotaKind::LumaQuota,
            Provider::Gpts => QuotaKind::GptsQuota,
        }
    }
}

impl fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QuotaKind {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QuotaKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                ParseEnumError::new(
                    "kind",
                    s,
                    "credits, mj_quota, suno_quota, luma_quota, gpts_quota",
                )
            })
    }
}

/// What one task costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// The balance it is charged to.
    pub kind: QuotaKind,
    /// How much.
    pub amount: u64,
}

/// Units of each kind that one US dollar buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitsPerDollar {
    /// 700.
    pub credits: u64,
    /// 200.
    pub mj_quota: u64,
    /// 250.
    pub suno_quota: u64,
    /// 100.
    pub luma_quota: u64,
    /// 1000.
    pub gpts_quota: u64,
}

impl UnitsPerDollar {
    /// Units of `kind` per dollar.
    pub fn get(&self, kind: QuotaKind) -> u64 {
        match kind {
            QuotaKind::Credits => self.credits,
            QuotaKind::MjQuota => self.mj_quota,
            QuotaKind::SunoQuota => self.suno_quota,
            QuotaKind::LumaQuota => self.luma_quota,
            QuotaKind::GptsQuota => self.gpts_quota,
        }
    }

    /// The dollar value of `amount` units of `kind`.
    pub fn dollars(&self, cost: Cost) -> f64 {
        cost.amount as f64 / self.get(cost.kind).max(1) as f64
    }
}

/// One row of the Midjourney table: quotas per endpoint type 0..=4.
pub type MjRow = [u64; 5];

/// The Midjourney table: process mode × version rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MjPrices {
    /// Relax, V5.2 & below.
    pub relax_v52: MjRow,
    /// Relax, V6.
    pub relax_v6: MjRow,
    /// Fast, V5.2 & below.
    pub fast_v52: MjRow,
    /// Fast, V6.
    pub fast_v6: MjRow,
    /// Turbo, V5.2 & below.
    pub turbo_v52: MjRow,
    /// Turbo, V6.
    pub turbo_v6: MjRow,
    /// The 2x upscaler: relax, fast, turbo.
    pub upscale_2x: [u64; 3],
    /// The 4x upscaler: relax, fast, turbo.
    pub upscale_4x: [u64; 3],
}

impl MjPrices {
    /// The row for a mode and version.
    pub fn row(&self, mode: ProcessMode, version: MjVersion) -> &MjRow {
        match (mode, version) {
            (ProcessMode::Relax, MjVersion::V52AndBelow) => &self.relax_v52,
            (ProcessMode::Relax, MjVersion::V6) => &self.relax_v6,
            (ProcessMode::Fast, MjVersion::V52AndBelow) => &self.fast_v52,
            (ProcessMode::Fast, MjVersion::V6) => &self.fast_v6,
            (ProcessMode::Turbo, MjVersion::V52AndBelow) => &self.turbo_v52,
            (ProcessMode::Turbo, MjVersion::V6) => &self.turbo_v6,
        }
    }

    /// The price of an endpoint type (0..=4) in a mode and version.
    pub fn endpoint(&self, mode: ProcessMode, version: MjVersion, endpoint_type: u8) -> u64 {
        self.row(mode, version)[usize::from(endpoint_type.min(4))]
    }

    /// The price of a special upscaler in a mode.
    pub fn upscaler(&self, upscaler: Upscaler, mode: ProcessMode) -> u64 {
        let by_mode = |prices: &[u64; 3]| match mode {
            ProcessMode::Relax => prices[0],
            ProcessMode::Fast => prices[1],
            ProcessMode::Turbo => prices[2],
        };
        match upscaler {
            Upscaler::X2 => by_mode(&self.upscale_2x),
            Upscaler::X4 => by_mode(&self.upscale_4x),
            // "light/beta: same as V5.2 Type 1; subtle/creative: same as V6 Type 1"
            Upscaler::Light | Upscaler::Beta => self.endpoint(mode, MjVersion::V52AndBelow, 1),
            Upscaler::Subtle | Upscaler::Creative => self.endpoint(mode, MjVersion::V6, 1),
        }
    }
}

/// The seed's Midjourney endpoint type (0–4) of an action; special upscalers have none.
pub fn mj_endpoint_type(action: &MjAction) -> Option<u8> {
    match action {
        MjAction::Imagine(_) => Some(0),
        MjAction::Variation(_)
        | MjAction::Outpaint(_)
        | MjAction::Pan(_)
        | MjAction::Blend(_)
        | MjAction::Inpaint(_)
        | MjAction::Reroll(_) => Some(1),
        MjAction::Describe(_) => Some(2),
        MjAction::Upscale(u) => u.upscaler.is_none().then_some(2),
        MjAction::Seed(_) => Some(3),
    }
}

/// Suno quotas per task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SunoPrices {
    /// A music-create generation (2 clips) on v3 (`chirp-v3-0`).
    pub create_v3: u64,
    /// A music-create generation on v3.5 and newer.
    pub create_v35: u64,
    /// A music-continue generation.
    pub continue_: u64,
    /// A lyric synthesis.
    pub lyrics: u64,
    /// An audio upload.
    pub upload: u64,
    /// A concat (the whole song of a continued clip); the page prices none.
    pub concat: u64,
    /// The model used when a request names none.
    pub default_model_version: String,
}

/// Luma quotas per task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LumaPrices {
    /// A video (generation or extend).
    pub video: u64,
    /// A watermark-free download of a finished video (the seed prices no such call; 0).
    pub remove_watermark: u64,
    /// Free trial quotas each new tenant starts with.
    pub free_trial: u64,
}

/// GPTs quotas per call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GptsPrices {
    /// create conversation.
    pub create_conversation: u64,
    /// continue conversation.
    pub continue_conversation: u64,
    /// upload file.
    pub upload_file: u64,
    /// download file.
    pub download_file: u64,
    /// create GPTs.
    pub create_gpts: u64,
    /// modify GPTs.
    pub modify_gpts: u64,
    /// models.
    pub models: u64,
    /// gizmos.
    pub gizmos: u64,
}

/// The Midjourney automatic conversion of credits into quotas.
///
/// "If you have less than 100 Midjourney PPU Quotas, we will automatically convert your
/// GoAPI credits into Quotas. The first conversion attempt will try converting 2100
/// credits; if the credits remaining are insufficient the second attempt will try 700.
/// If still insufficient, the automatic conversion process will stop."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MjAutoConversion {
    /// Convert when the Midjourney quota balance is below this (100).
    pub below: u64,
    /// Credit amounts tried in order (2100, then 700).
    pub steps: Vec<u64>,
}

/// BYOA seat prices in US cents per month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByoaSeatPrices {
    /// Midjourney: first seat.
    pub midjourney_first: u32,
    /// Midjourney: each additional seat.
    pub midjourney_additional: u32,
    /// GPTs per seat.
    pub gpts: u32,
    /// Suno per seat.
    pub suno: u32,
    /// Luma per seat.
    pub luma: u32,
}

/// The whole price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    /// $1 buys this many units of each kind.
    pub units_per_dollar: UnitsPerDollar,
    /// Midjourney.
    pub midjourney: MjPrices,
    /// Midjourney credit auto-conversion.
    pub mj_auto_conversion: MjAutoConversion,
    /// Suno.
    pub suno: SunoPrices,
    /// Luma.
    pub luma: LumaPrices,
    /// GPTs.
    pub gpts: GptsPrices,
    /// BYOA seats.
    pub byoa_seats: ByoaSeatPrices,
}

impl PriceTable {
    /// The table exactly as the seed states it.
    pub fn seed() -> Self {
        PriceTable {
            units_per_dollar: UnitsPerDollar {
                credits: 700,
                mj_quota: 200,
                suno_quota: 250,
                luma_quota: 100,
                gpts_quota: 1000,
            },
            midjourney: MjPrices {
                relax_v52: [3, 3, 2, 1, 0],
                relax_v6: [6, 6, 2, 1, 0],
                fast_v52: [9, 9, 2, 1, 0],
                fast_v6: [14, 14, 2, 1, 0],
                turbo_v52: [25, 20, 2, 1, 0],
                turbo_v6: [32, 28, 2, 1, 0],
                upscale_2x: [9, 18, 40],
                upscale_4x: [27, 54, 120],
            },
            mj_auto_conversion: MjAutoConversion {
                below: 100,
                steps: vec![2100, 700],
            },
            suno: SunoPrices {
                create_v3: 5,
                create_v35: 10,
                continue_: 10,
                lyrics: 0,
                upload: 1,
                concat: 0,
                default_model_version: "chirp-v3-5".to_string(),
            },
            luma: LumaPrices {
                video: 30,
                remove_watermark: 0,
                free_trial: 150,
            },
            gpts: GptsPrices {
                create_conversation: 30,
                continue_conversation: 10,
                upload_file: 1,
                download_file: 1,
                create_gpts: 100,
                modify_gpts: 10,
                models: 0,
                gizmos: 0,
            },
            byoa_seats: ByoaSeatPrices {
                midjourney_first: 1000,
                midjourney_additional: 600,
                gpts: 500,
                suno: 500,
                luma: 1000,
            },
        }
    }

    /// What a task costs in a service mode. BYOA is always 0 of the provider's quota.
    pub fn price(&self, service_mode: ServiceMode, task: &TaskSpec) -> Cost {
        let kind = QuotaKind::of(task.provider());
        let amount = match service_mode {
            ServiceMode::Byoa => 0,
            ServiceMode::Ppu => match task {
                TaskSpec::Midjourney(t) => self.mj_price(t),
                TaskSpec::Suno(t) => self.suno_price(t),
                TaskSpec::Luma(t) => match t {
                    LumaTask::VideoGeneration(_) | LumaTask::ExtendVideo(_) => self.luma.video,
                    LumaTask::RemoveWatermark(_) => self.luma.remove_watermark,
                },
                TaskSpec::Gpts(t) => {
                    let g = &self.gpts;
                    match t {
                        GptsTask::CreateConversation(_) => g.create_conversation,
                        GptsTask::ContinueConversation(_) => g.continue_conversation,
                        GptsTask::UploadFile(_) => g.upload_file,
                        GptsTask::DownloadFile(_) => g.download_file,
                        GptsTask::CreateGpts(_) => g.create_gpts,
                        GptsTask::ModifyGpts(_) => g.modify_gpts,
                        GptsTask::Models(_) => g.models,
                        GptsTask::Gizmos(_) => g.gizmos,
                    }
                }
            },
        };
        Cost { kind, amount }
    }

    fn mj_price(&self, t: &MjTask) -> u64 {
        match (&t.action, mj_endpoint_type(&t.action)) {
            (MjAction::Upscale(u), None) => match u.upscaler {
                Some(up) => self.midjourney.upscaler(up, t.process_mode),
                None => self.midjourney.endpoint(t.process_mode, t.version, 2),
            },
            (_, Some(ty)) => self.midjourney.endpoint(t.process_mode, t.version, ty),
            (_, None) => 0,
        }
    }

    fn suno_price(&self, t: &SunoTask) -> u64 {
        let s = &self.suno;
        match t {
            _ if t.is_continue() => s.continue_,
            SunoTask::GenerateMusic(_) | SunoTask::GenerateMusicCustom(_) => {
                let model = t.model_version().unwrap_or(&s.default_model_version);
                if is_suno_v3(model) {
                    s.create_v3
                } else {
                    s.create_v35
                }
            }
            SunoTask::Lyrics(_) => s.lyrics,
            SunoTask::Upload(_) => s.upload,
            SunoTask::Concat(_) => s.concat,
        }
    }

    /// Credits → Midjourney quotas for one conversion step (700 credits = 200 quotas).
    pub fn credits_to_mj_quota(&self, credits: u64) -> u64 {
        credits * self.units_per_dollar.mj_quota / self.units_per_dollar.credits.max(1)
    }

    /// The conversion the seed's rule makes before a Midjourney PPU hold: given the
    /// balances, how many credits to convert (0 when none is needed or possible).
    pub fn mj_auto_conversion(&self, mj_quota: u64, credits: u64) -> u64 {
        if mj_quota >= self.mj_auto_conversion.below {
            return 0;
        }
        self.mj_auto_conversion
            .steps
            .iter()
            .copied()
            .find(|step| *step <= credits)
            .unwrap_or(0)
    }
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::seed()
    }
}

/// True for Suno v3 models (`chirp-v3-0`, `chirp-v3`, `v3`), priced on the v3 column.
pub fn is_suno_v3(model: &str) -> bool {
    let m = model.trim().to_ascii_lowercase();
    let m = m.strip_prefix("chirp-").unwrap_or(&m);
    matches!(m, "v3" | "v3-0" | "v3.0")
}

/// What a task costs, on the seed's price table.
pub fn price(service_mode: ServiceMode, task: &TaskSpec) -> Cost {
    PriceTable::seed().price(service_mode, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_conversion_tries_2100_then_700_then_stops() {
        let t = PriceTable::seed();
        assert_eq!(t.mj_auto_conversion(99, 5000), 2100);
        assert_eq!(t.mj_auto_conversion(99, 2099), 700);
        assert_eq!(t.mj_auto_conversion(0, 699), 0);
        assert_eq!(t.mj_auto_conversion(100, 5000), 0);
        assert_eq!(t.credits_to_mj_quota(2100), 600);
        assert_eq!(t.credits_to_mj_quota(700), 200);
    }

    #[test]
    fn suno_v3_detection() {
        assert!(is_suno_v3("chirp-v3-0"));
        assert!(is_suno_v3("v3"));
        assert!(!is_suno_v3("chirp-v3-5"));
        assert!(!is_suno_v3("chirp-v4"));
    }
}
