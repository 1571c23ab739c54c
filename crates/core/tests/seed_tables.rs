//! Every cell of the seed's plan and price tables, one test per table row, checked through
//! the public functions the rest of Switchyard calls (`price`, `entitlement`, the plan
//! table). A wrong number fails the test named after its row.

use serde_json::{Value, json};
use switchyard_core::plan::{Access, PlanTable};
use switchyard_core::pricing::{PriceTable, QuotaKind};
use switchyard_core::task::{MjVersion, ParseOptions, TaskSpec};
use switchyard_core::{Plan, ProcessMode, ServiceMode, entitlement, price};

fn spec(model: &str, task_type: &str, input: Value) -> TaskSpec {
    TaskSpec::parse(model, task_type, &input, &ParseOptions::default())
        .unwrap_or_else(|e| panic!("{model}/{task_type}: {e}"))
}

/// A Midjourney task in a mode and version (follow-ups inherit them, as from an origin).
fn mj(task_type: &str, input: Value, mode: ProcessMode, version: MjVersion) -> TaskSpec {
    let mut s = spec("midjourney", task_type, input);
    if let TaskSpec::Midjourney(t) = &mut s {
        t.process_mode = mode;
        t.version = version;
    }
    s
}

fn ppu(s: &TaskSpec) -> u64 {
    price(ServiceMode::Ppu, s).amount
}

/// Check one Midjourney row: types 0..=3 through real task types of that type, type 4
/// (fetch/multi_fetch/validate, which are not tasks) on the table itself.
fn check_mj_row(mode: ProcessMode, version: MjVersion, want: [u64; 5]) {
    let o = || json!({"origin_task_id": "o"});
    let type0 = [mj("imagine", json!({"prompt": "p"}), mode, version)];
    let type1 = [
        mj(
            "variation",
            json!({"origin_task_id": "o", "index": 1}),
            mode,
            version,
        ),
        mj(
            "outpaint",
            json!({"origin_task_id": "o", "zoom_ratio": 1.5}),
            mode,
            version,
        ),
        mj(
            "pan",
            json!({"origin_task_id": "o", "direction": "up"}),
            mode,
            version,
        ),
        mj(
            "blend",
            json!({"image_urls": ["https://x/a", "https://x/b"]}),
            mode,
            version,
        ),
        mj(
            "inpaint",
            json!({"origin_task_id": "o", "mask": "m", "prompt": "p"}),
            mode,
            version,
        ),
        mj("reroll", o(), mode, version),
    ];
    let type2 = [
        mj(
            "describe",
            json!({"image_url": "https://x/a"}),
            mode,
            version,
        ),
        mj(
            "upscale",
            json!({"origin_task_id": "o", "index": 1}),
            mode,
            version,
        ),
        mj(
            "upscale",
            json!({"origin_task_id": "o", "index": 4}),
            mode,
            version,
        ),
    ];
    let type3 = [mj("seed", o(), mode, version)];
    for (ty, tasks) in [(0, &type0[..]), (1, &type1), (2, &type2), (3, &type3)] {
        for t in tasks {
            assert_eq!(
                ppu(t),
                want[ty],
                "{mode} {} type {ty}: {}",
                version.label(),
                t.task_type()
            );
            assert_eq!(price(ServiceMode::Byoa, t).amount, 0, "BYOA is free");
            assert_eq!(price(ServiceMode::Ppu, t).kind, QuotaKind::MjQuota);
        }
    }
    assert_eq!(
        PriceTable::seed().midjourney.endpoint(mode, version, 4),
        want[4],
        "type 4"
    );
}

macro_rules! mj_rows {
    ($($name:ident: $mode:ident, $ver:ident => $row:expr;)*) => {$(
        #[test]
        fn $name() {
            check_mj_row(ProcessMode::$mode, MjVersion::$ver, $row);
        }
    )*};
}

mj_rows! {
    mj_row_relax_v52: Relax, V52AndBelow => [3, 3, 2, 1, 0];
    mj_row_relax_v6: Relax, V6 => [6, 6, 2, 1, 0];
    mj_row_fast_v52: Fast, V52AndBelow => [9, 9, 2, 1, 0];
    mj_row_fast_v6: Fast, V6 => [14, 14, 2, 1, 0];
    mj_row_turbo_v52: Turbo, V52AndBelow => [25, 20, 2, 1, 0];
    mj_row_turbo_v6: Turbo, V6 => [32, 28, 2, 1, 0];
}

fn upscaler(name: &str, mode: ProcessMode) -> u64 {
    // The version of the origin does not matter for special upscalers.
    let a = ppu(&mj(
        "upscale",
        json!({"origin_task_id": "o", "upscaler": name}),
        mode,
        MjVersion::V6,
    ));
    let b = ppu(&mj(
        "upscale",
        json!({"origin_task_id": "o", "upscaler": name}),
        mode,
        MjVersion::V52AndBelow,
    ));
    assert_eq!(
        a, b,
        "{name} in {mode} must not depend on the origin's version"
    );
    a
}

macro_rules! upscaler_rows {
    ($($name:ident: $up:literal => [$relax:expr, $fast:expr, $turbo:expr];)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(upscaler($up, ProcessMode::Relax), $relax, "relax");
            assert_eq!(upscaler($up, ProcessMode::Fast), $fast, "fast");
            assert_eq!(upscaler($up, ProcessMode::Turbo), $turbo, "turbo");
        }
    )*};
}

upscaler_rows! {
    mj_upscaler_2x: "2x" => [9, 18, 40];
    mj_upscaler_4x: "4x" => [27, 54, 120];
    // light and beta: same as V5.2 Type 1.
    mj_upscaler_light: "light" => [3, 9, 20];
    mj_upscaler_beta: "beta" => [3, 9, 20];
    // subtle and creative: same as V6 Type 1.
    mj_upscaler_subtle: "subtle" => [6, 14, 28];
    mj_upscaler_creative: "creative" => [6, 14, 28];
}

#[test]
fn mj_default_version_is_the_v6_row_and_flags_pick_rows() {
    let p = |prompt: &str| {
        ppu(&spec(
            "midjourney",
            "imagine",
            json!({"prompt": prompt, "process_mode": "fast"}),
        ))
    };
    assert_eq!(p("a fox"), 14);
    assert_eq!(p("a fox --v 5.2"), 9);
    assert_eq!(p("a fox --niji 5"), 9);
    assert_eq!(p("a fox --v 6"), 14);
}

#[test]
fn conversion_rates() {
    let u = PriceTable::seed().units_per_dollar;
    assert_eq!(
        (
            u.credits,
            u.mj_quota,
            u.suno_quota,
            u.luma_quota,
            u.gpts_quota
        ),
        (700, 200, 250, 100, 1000)
    );
}

#[test]
fn mj_auto_conversion_rule() {
    let t = PriceTable::seed();
    assert_eq!(t.mj_auto_conversion.below, 100);
    assert_eq!(t.mj_auto_conversion.steps, vec![2100, 700]);
    assert_eq!(t.mj_auto_conversion(99, 2100), 2100);
    assert_eq!(t.mj_auto_conversion(99, 2000), 700);
    assert_eq!(t.mj_auto_conversion(99, 600), 0);
    assert_eq!(t.mj_auto_conversion(100, 1_000_000), 0);
    assert_eq!(t.credits_to_mj_quota(2100), 600);
}

// ---- Suno: "each music-create generation | per music-continue | per lyric | per upload | concurrency"

fn suno_prices() -> [u64; 5] {
    let create = |model: &str| {
        ppu(&spec(
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "p", "model_version": model}),
        ))
    };
    [
        create("chirp-v3-0"),
        create("chirp-v3-5"),
        ppu(&spec(
            "suno",
            "generate_music_custom",
            json!({"prompt": "la", "continue_clip_id": "c", "continue_at": 10}),
        )),
        ppu(&spec("suno", "lyrics", json!({"prompt": "p"}))),
        ppu(&spec(
            "suno",
            "upload",
            json!({"audio_url": "https://x/a.mp3"}),
        )),
    ]
}

fn suno_allowed(plan: Plan) -> [bool; 4] {
    let ok = |s: TaskSpec| entitlement(plan, ServiceMode::Ppu, &s).is_ok();
    [
        ok(spec(
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "p"}),
        )),
        ok(spec(
            "suno",
            "generate_music_custom",
            json!({"prompt": "la", "continue_clip_id": "c"}),
        )),
        ok(spec("suno", "lyrics", json!({"prompt": "p"}))),
        ok(spec(
            "suno",
            "upload",
            json!({"audio_url": "https://x/a.mp3"}),
        )),
    ]
}

#[test]
fn suno_row_hobbyist() {
    assert_eq!(suno_prices(), [5, 10, 10, 0, 1]);
    assert_eq!(suno_allowed(Plan::Hobbyist), [true, false, false, false]);
    assert_eq!(PlanTable::seed().hobbyist.ppu_caps.suno, Some(2));
}

#[test]
fn suno_row_developer() {
    assert_eq!(suno_allowed(Plan::Developer), [true, true, true, true]);
    assert_eq!(PlanTable::seed().developer.ppu_caps.suno, Some(10));
}

#[test]
fn suno_row_premium() {
    assert_eq!(suno_allowed(Plan::Premium), [true, true, true, true]);
    assert_eq!(PlanTable::seed().premium.ppu_caps.suno, Some(30));
}

#[test]
fn suno_default_model_is_priced_as_v35() {
    assert_eq!(
        ppu(&spec(
            "suno",
            "generate_music",
            json!({"gpt_description_prompt": "p"})
        )),
        10
    );
    assert_eq!(
        ppu(&spec(
            "suno",
            "generate_music_custom",
            json!({"prompt": "la", "model_version": "chirp-v3-0"})
        )),
        5
    );
}

// ---- Luma: "Free 150 trial | video generation | image to video | extend | remove watermark | start and end frame"

fn luma_tasks() -> [TaskSpec; 5] {
    let img = |u: &str| json!({"type": "image", "url": u});
    [
        spec("luma", "video_generation", json!({"prompt": "p"})),
        spec(
            "luma",
            "video_generation",
            json!({"prompt": "p", "key_frames": {"frame0": img("https://x/a.png")}}),
        ),
        spec("luma", "extend_video", json!({"generation_id": "g1"})),
        spec("luma", "remove_watermark", json!({"origin_task_id": "t1"})),
        spec(
            "luma",
            "video_generation",
            json!({"prompt": "p", "key_frames": {"frame0": img("https://x/a.png"), "frame1": img("https://x/b.png")}}),
        ),
    ]
}

fn luma_row(plan: Plan, mode: ServiceMode) -> [bool; 5] {
    luma_tasks().map(|t| entitlement(plan, mode, &t).is_ok())
}

#[test]
fn luma_prices_and_trial() {
    let t = luma_tasks();
    assert_eq!(ppu(&t[0]), 30);
    assert_eq!(ppu(&t[1]), 30);
    assert_eq!(ppu(&t[2]), 30);
    assert_eq!(PriceTable::seed().luma.free_trial, 150);
    for task in &t {
        assert_eq!(price(ServiceMode::Byoa, task).amount, 0);
        assert_eq!(price(ServiceMode::Ppu, task).kind, QuotaKind::LumaQuota);
    }
}

#[test]
fn luma_row_hobbyist() {
    assert_eq!(
        luma_row(Plan::Hobbyist, ServiceMode::Ppu),
        [true, false, false, false, false]
    );
    let table = PlanTable::seed();
    assert!(!table.hobbyist.luma_ppu.beyond_free_trial);
    let e = table
        .top_up_entitlement(Plan::Hobbyist, QuotaKind::LumaQuota)
        .unwrap_err();
    assert_eq!(e.needs, Some(Plan::Developer));
    assert!(
        table
            .top_up_entitlement(Plan::Hobbyist, QuotaKind::MjQuota)
            .is_ok()
    );
}

#[test]
fn luma_row_developer() {
    assert_eq!(
        luma_row(Plan::Developer, ServiceMode::Ppu),
        [true, true, true, false, true]
    );
}

#[test]
fn luma_row_premium() {
    assert_eq!(
        luma_row(Plan::Premium, ServiceMode::Ppu),
        [true, true, true, true, true]
    );
}

#[test]
fn luma_row_hobbyist_byoa() {
    assert_eq!(
        luma_row(Plan::Hobbyist, ServiceMode::Byoa),
        [true, true, true, false, false]
    );
}

#[test]
fn luma_row_developer_byoa() {
    assert_eq!(
        luma_row(Plan::Developer, ServiceMode::Byoa),
        [true, true, true, true, true]
    );
    assert_eq!(
        PlanTable::seed().developer.luma_byoa.remove_watermark,
        Access::FollowsAccount
    );
}

#[test]
fn luma_row_premium_byoa() {
    assert_eq!(
        luma_row(Plan::Premium, ServiceMode::Byoa),
        [true, true, true, true, true]
    );
    assert_eq!(
        PlanTable::seed().premium.luma_byoa.remove_watermark,
        Access::FollowsAccount
    );
}

// ---- GPTs: "create conversation 30 | continue 10 | upload 1 | download 1 | create GPTs 100 | modify 10 | models 0 | gizmos 0"

#[test]
fn gpts_price_rows() {
    let cases = [
        ("create_conversation", json!({"message": "hi"}), 30),
        (
            "continue_conversation",
            json!({"conversation_id": "c", "message": "hi"}),
            10,
        ),
        ("upload_file", json!({"file_url": "https://x/f"}), 1),
        ("download_file", json!({"file_id": "f"}), 1),
        ("create_gpts", json!({"name": "n"}), 100),
        ("modify_gpts", json!({"gizmo_id": "g-1"}), 10),
        ("models", json!({}), 0),
        ("gizmos", json!({}), 0),
    ];
    for (tt, input, want) in cases {
        let s = spec("gpts", tt, input);
        assert_eq!(ppu(&s), want, "{tt}");
        assert_eq!(price(ServiceMode::Ppu, &s).kind, QuotaKind::GptsQuota);
        assert_eq!(price(ServiceMode::Byoa, &s).amount, 0, "{tt} BYOA");
    }
}

// ---- The subscription plan table, row by row.

fn column<T: PartialEq + std::fmt::Debug>(f: impl Fn(&switchyard_core::PlanLimits) -> T) -> [T; 4] {
    let t = PlanTable::seed();
    Plan::ALL.map(|p| f(t.get(p)))
}

#[test]
fn plan_row_price() {
    assert_eq!(
        column(|l| l.monthly_price_cents),
        [Some(0), Some(800), Some(5000), None]
    );
}

#[test]
fn plan_row_midjourney_ppu_concurrent_jobs() {
    assert_eq!(
        column(|l| l.ppu_caps.midjourney),
        [Some(3), Some(9), Some(30), Some(30)]
    );
}

#[test]
fn plan_row_task_logs() {
    assert_eq!(
        column(|l| l.task_log_retention_hours),
        [48, 7 * 24, 30 * 24, 30 * 24]
    );
    assert_eq!(PlanTable::seed().hobbyist.retention_secs(), 48 * 3600);
}

#[test]
fn plan_row_gpts_ppu_active_conversations() {
    assert_eq!(column(|l| l.gpts_ppu), [false, true, true, true]);
    assert_eq!(
        column(|l| l.ppu_caps.gpts),
        [None, Some(10), Some(200), Some(200)]
    );
    let s = spec("gpts", "create_conversation", json!({"message": "hi"}));
    for plan in Plan::ALL {
        assert!(
            entitlement(plan, ServiceMode::Byoa, &s).is_ok(),
            "GPTs BYOA: as per your accounts, on {plan}"
        );
    }
}

#[test]
fn plan_row_auto_failover_to_ppu() {
    assert_eq!(column(|l| l.auto_failover), [false, false, true, true]);
}

#[test]
fn plan_row_using_bot_id() {
    assert_eq!(column(|l| l.bot_id), [false, false, true, true]);
}

#[test]
fn plan_row_data_report() {
    assert_eq!(column(|l| l.report_days), [0, 1, 7, 7]);
}

#[test]
fn plan_row_luma_has_no_cap() {
    assert_eq!(column(|l| l.ppu_caps.luma), [None, None, None, None]);
}

#[test]
fn byoa_seat_prices() {
    let s = PriceTable::seed().byoa_seats;
    assert_eq!(
        (
            s.midjourney_first,
            s.midjourney_additional,
            s.gpts,
            s.suno,
            s.luma
        ),
        (1000, 600, 500, 500, 1000)
    );
}

// ---- The edge cases the foundation issue names.

#[test]
fn suno_continue_on_hobbyist_names_developer() {
    let s = spec(
        "suno",
        "generate_music_custom",
        json!({"prompt": "la", "continue_clip_id": "c"}),
    );
    let e = entitlement(Plan::Hobbyist, ServiceMode::Ppu, &s).unwrap_err();
    assert_eq!(e.needs, Some(Plan::Developer));
    assert!(e.to_string().contains("developer"), "{e}");
}

#[test]
fn gpts_ppu_on_hobbyist_is_not_entitled() {
    let s = spec("gpts", "create_conversation", json!({"message": "hi"}));
    let e = entitlement(Plan::Hobbyist, ServiceMode::Ppu, &s).unwrap_err();
    assert_eq!(e.needs, Some(Plan::Developer));
}

#[test]
fn luma_remove_watermark_ppu_developer_no_premium_yes() {
    let s = spec("luma", "remove_watermark", json!({"origin_task_id": "t"}));
    let e = entitlement(Plan::Developer, ServiceMode::Ppu, &s).unwrap_err();
    assert_eq!(e.needs, Some(Plan::Premium));
    assert!(entitlement(Plan::Premium, ServiceMode::Ppu, &s).is_ok());
}

#[test]
fn mj_turbo_v6_upscale_u1_is_2() {
    let s = mj(
        "upscale",
        json!({"origin_task_id": "o", "index": 1}),
        ProcessMode::Turbo,
        MjVersion::V6,
    );
    assert_eq!(ppu(&s), 2);
}

#[test]
fn mj_4x_upscaler_under_relax_is_27() {
    assert_eq!(upscaler("4x", ProcessMode::Relax), 27);
}

#[test]
fn bot_id_and_skip_prompt_check_need_premium() {
    let pinned = spec(
        "midjourney",
        "imagine",
        json!({"prompt": "p", "bot_id": "acc_1"}),
    );
    let e = entitlement(Plan::Developer, ServiceMode::Byoa, &pinned).unwrap_err();
    assert_eq!(e.needs, Some(Plan::Premium));
    assert!(entitlement(Plan::Premium, ServiceMode::Byoa, &pinned).is_ok());
    let skip = spec(
        "midjourney",
        "imagine",
        json!({"prompt": "p", "skip_prompt_check": true}),
    );
    // Skipping the checker is a plan right the intake applies, not a refusal.
    assert!(entitlement(Plan::Hobbyist, ServiceMode::Ppu, &skip).is_ok());
    assert!(
        !PlanTable::seed()
            .get(Plan::Hobbyist)
            .midjourney
            .skip_prompt_check
    );
    assert!(
        PlanTable::seed()
            .get(Plan::Premium)
            .midjourney
            .skip_prompt_check
    );
}

#[test]
fn enterprise_is_overridable_from_config() {
    let c = switchyard_core::Config::from_toml_str(
        "[plans.enterprise]\ntask_log_retention_hours = 2160\n[plans.enterprise.ppu_caps]\nmidjourney = 100\nsuno = 60\n",
    )
    .unwrap();
    assert_eq!(c.plans.enterprise.ppu_caps.midjourney, Some(100));
    assert_eq!(c.plans.enterprise.ppu_caps.suno, Some(60));
    assert_eq!(c.plans.enterprise.task_log_retention_hours, 2160);
    assert_eq!(c.plans.premium, PlanTable::seed().premium);
}
