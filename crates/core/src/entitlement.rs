//! Which plan may run which task: the entitlement check every submit goes through.

use crate::error::NotEntitled;
use crate::plan::{Plan, PlanLimits, PlanTable};
use crate::pricing::QuotaKind;
use crate::provider::ServiceMode;
use crate::task::{LumaFeature, SunoTask, TaskSpec};

impl PlanTable {
    /// Whether `plan` may run `task` in `service_mode`. The error names the feature and the
    /// lowest plan that would allow it.
    pub fn entitlement(
        &self,
        plan: Plan,
        service_mode: ServiceMode,
        task: &TaskSpec,
    ) -> Result<(), NotEntitled> {
        let limits = self.get(plan);
        let check = |allowed: &dyn Fn(&PlanLimits) -> bool, feature: String| {
            if allowed(limits) {
                Ok(())
            } else {
                Err(NotEntitled {
                    plan,
                    needs: self.lowest_plan_where(allowed),
                    feature,
                })
            }
        };
        match task {
            TaskSpec::Midjourney(t) => {
                if t.action.bot_id().is_some() {
                    check(&|l| l.bot_id, "midjourney bot_id (account pinning)".into())?;
                }
                // skip_prompt_check is not an entitlement: a plan without it has the
                // prompt checked all the same (the intake says so in the task's logs).
                Ok(())
            }
            TaskSpec::Suno(t) => {
                if t.is_continue() {
                    return check(&|l| l.suno.continue_, "suno continue".into());
                }
                match t {
                    SunoTask::GenerateMusic(_) | SunoTask::GenerateMusicCustom(_) => {
                        check(&|l| l.suno.create, "suno music generation".into())
                    }
                    SunoTask::Lyrics(_) => check(&|l| l.suno.lyrics, "suno lyrics".into()),
                    SunoTask::Concat(_) => check(&|l| l.suno.continue_, "suno concat".into()),
                    SunoTask::Upload(_) => check(&|l| l.suno.upload, "suno upload".into()),
                }
            }
            TaskSpec::Luma(t) => {
                let feature = t.feature();
                let name = match feature {
                    LumaFeature::TextToVideo => "video generation",
                    LumaFeature::ImageToVideo => "image to video",
                    LumaFeature::StartEndFrame => "start and end frame",
                    LumaFeature::Extend => "extend video",
                    LumaFeature::RemoveWatermark => "remove watermark",
                };
                check(
                    &move |l| {
                        let grid = l.luma(service_mode);
                        match feature {
                            LumaFeature::TextToVideo => grid.video_generation,
                            LumaFeature::ImageToVideo => grid.image_to_video,
                            LumaFeature::StartEndFrame => grid.start_end_frame,
                            LumaFeature::Extend => grid.extend,
                            LumaFeature::RemoveWatermark => grid.remove_watermark,
                        }
                        .allowed()
                    },
                    format!("luma {name} ({service_mode})"),
                )
            }
            TaskSpec::Gpts(_) => match service_mode {
                ServiceMode::Ppu => check(&|l| l.gpts_ppu, "gpts on the PPU pool".into()),
                // "GPTs API (BYOA): as per your accounts" on every plan.
                ServiceMode::Byoa => Ok(()),
            },
        }
    }

    /// Whether `plan` may buy `kind`: Hobbyist has "no access beyond the free trial" of
    /// Luma quotas, so Luma top-ups need Developer.
    pub fn top_up_entitlement(&self, plan: Plan, kind: QuotaKind) -> Result<(), NotEntitled> {
        let allowed = |l: &PlanLimits| match kind {
            QuotaKind::LumaQuota => l.luma_ppu.beyond_free_trial,
            _ => true,
        };
        if allowed(self.get(plan)) {
            Ok(())
        } else {
            Err(NotEntitled {
                plan,
                needs: self.lowest_plan_where(allowed),
                feature: format!("buying {kind} beyond the free trial"),
            })
        }
    }
}

/// Whether `plan` may run `task` in `service_mode`, on the seed's plan table.
pub fn entitlement(
    plan: Plan,
    service_mode: ServiceMode,
    task: &TaskSpec,
) -> Result<(), NotEntitled> {
    PlanTable::seed().entitlement(plan, service_mode, task)
}
