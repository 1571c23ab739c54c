//! `switchyard plans` and `switchyard price`: the seed's tables for people and scripts.

use clap::Args;
use serde_json::{Map, Value, json};
use switchyard_core::plan::{Access, Grant, LumaFeatures, PlanLimits};
use switchyard_core::task::{LumaTask, MjAction, SunoTask, task_types};
use switchyard_core::{Config, Plan, ProcessMode, Provider, ServiceMode, SpecError, TaskSpec};

/// A failed command: bad arguments (exit 2) or anything else (exit 1).
#[derive(Debug)]
pub enum CliError {
    /// The arguments cannot work; the message says what to pass instead.
    Usage(String),
    /// Something else went wrong.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Other(e)
    }
}

/// Arguments of `switchyard price`.
#[derive(Debug, Args)]
pub struct PriceArgs {
    /// midjourney | suno | luma | gpts
    #[arg(long)]
    model: String,
    /// The task type, e.g. imagine, upscale, generate_music, video_generation.
    #[arg(long = "task")]
    task_type: String,
    /// relax | fast | turbo (Midjourney). For follow-up actions, the origin task's mode.
    #[arg(long)]
    mode: Option<String>,
    /// The prompt (Midjourney prompt, Suno description or lyrics, Luma prompt, GPTs message).
    #[arg(long)]
    prompt: Option<String>,
    /// Image index 1–4 (upscale, variation).
    #[arg(long)]
    index: Option<u8>,
    /// Special upscaler: 2x, 4x, light, beta, subtle, creative.
    #[arg(long)]
    upscaler: Option<String>,
    /// Any other input fields, as a JSON object, e.g. '{"model_version": "chirp-v3-0"}'.
    #[arg(long)]
    input: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Print the plan table.
pub fn plans(config: &Config, json_out: bool) -> Result<(), CliError> {
    if json_out {
        let v = json!({"plans": config.plans, "prices": config.prices});
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    let table = &config.plans;
    let cols: Vec<&PlanLimits> = Plan::ALL.iter().map(|p| table.get(*p)).collect();
    let row = |label: &str, f: &dyn Fn(&PlanLimits) -> String| {
        let mut line = format!("{label:<38}");
        for l in &cols {
            line.push_str(&format!("{:<13}", f(l)));
        }
        println!("{}", line.trim_end());
    };
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let cap = |c: Option<u32>| c.map_or("no cap".to_string(), |n| n.to_string());
    let access = |a: Access| match a {
        Access::Yes => "yes".to_string(),
        Access::No => "no".to_string(),
        Access::FollowsAccount => "per account".to_string(),
    };

    let mut header = format!("{:<38}", "");
    for p in Plan::ALL {
        header.push_str(&format!("{:<13}", p.as_str()));
    }
    println!("{}", header.trim_end());
    row("price per month", &|l| match l.monthly_price_cents {
        None => "contact us".into(),
        Some(0) => "free".into(),
        Some(c) => format!("${}", f64::from(c) / 100.0),
    });
    println!("\nPPU concurrency caps (BYOA: as per your accounts)");
    row("  midjourney concurrent jobs", &|l| {
        cap(l.ppu_caps.midjourney)
    });
    row("  suno generation concurrency", &|l| cap(l.ppu_caps.suno));
    row("  gpts active conversations", &|l| {
        if l.gpts_ppu {
            cap(l.ppu_caps.gpts)
        } else {
            "—".into()
        }
    });
    row("  luma", &|l| cap(l.ppu_caps.luma));
    println!();
    row("task logs kept", &|l| {
        let h = l.task_log_retention_hours;
        if h % 24 == 0 && h >= 72 {
            format!("{} days", h / 24)
        } else {
            format!("{h} hours")
        }
    });
    row("auto failover to PPU", &|l| yes(l.auto_failover));
    row("bot_id (pin an account)", &|l| yes(l.bot_id));
    row("automatic captcha resolver", &|l| yes(l.captcha_resolver));
    row("data report", &|l| match l.report_days {
        0 => "—".into(),
        1 => "1 day".into(),
        d => format!("{d} days"),
    });
    println!("\nMidjourney");
    row("  skip prompt checker", &|l| {
        yes(l.midjourney.skip_prompt_check)
    });
    let grant = |g: Grant| match g {
        Grant::Yes => "yes".to_string(),
        Grant::No => "no".to_string(),
        Grant::OnApproval => "on approval".to_string(),
    };
    for pool in ServiceMode::ALL {
        let name = pool.as_str().to_uppercase();
        row(&format!("  task progress ({name})"), &|l| {
            yes(l.midjourney.output(pool).task_progress)
        });
        row(&format!("  discord/temporary image urls ({name})"), &|l| {
            yes(l.midjourney.output(pool).discord_image_url)
        });
        row(&format!("  intermediate image urls ({name})"), &|l| {
            grant(l.midjourney.output(pool).intermediate_image_urls)
        });
    }
    println!("\nSuno");
    row("  create", &|l| yes(l.suno.create));
    row("  continue", &|l| yes(l.suno.continue_));
    row("  lyrics", &|l| yes(l.suno.lyrics));
    row("  upload", &|l| yes(l.suno.upload));
    for mode in ServiceMode::ALL {
        println!("\nLuma ({mode})");
        let grid = |l: &PlanLimits| -> LumaFeatures { *l.luma(mode) };
        row("  video generation", &|l| access(grid(l).video_generation));
        if mode == ServiceMode::Ppu {
            row("  quota beyond the free trial", &|l| {
                yes(grid(l).beyond_free_trial)
            });
        }
        row("  image to video", &|l| access(grid(l).image_to_video));
        row("  extend video", &|l| access(grid(l).extend));
        row("  remove watermark", &|l| access(grid(l).remove_watermark));
        row("  start and end frame", &|l| {
            access(grid(l).start_end_frame)
        });
    }
    println!("\nGPTs");
    row("  PPU", &|l| yes(l.gpts_ppu));
    row("  BYOA", &|_| "yes".into());
    let s = &config.prices.byoa_seats;
    let usd = |c: u32| f64::from(c) / 100.0;
    println!(
        "\nBYOA seats per month: midjourney ${} first, ${} each additional; suno ${}; luma ${}; gpts ${}",
        usd(s.midjourney_first),
        usd(s.midjourney_additional),
        usd(s.suno),
        usd(s.luma),
        usd(s.gpts)
    );
    println!("Prices per task: switchyard price --model <m> --task <t>; all tables: --json");
    Ok(())
}

/// The input field that `--prompt` fills for a task type.
fn prompt_field(provider: Provider, task_type: &str) -> &'static str {
    match (provider, task_type) {
        (Provider::Suno, SunoTask::GENERATE_MUSIC) => "gpt_description_prompt",
        (Provider::Gpts, _) => "message",
        _ => "prompt",
    }
}

fn build_input(args: &PriceArgs, provider: Provider) -> Result<Value, CliError> {
    let mut input: Map<String, Value> = match &args.input {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(CliError::Usage(
                    "--input must be a JSON object, e.g. --input '{\"index\": 1}'".into(),
                ));
            }
            Err(e) => {
                return Err(CliError::Usage(format!(
                    "--input is not valid JSON ({e}); quote it, e.g. --input '{{\"index\": 1}}'"
                )));
            }
        },
    };
    let tt = args.task_type.as_str();
    if let Some(p) = &args.prompt {
        input.insert(prompt_field(provider, tt).into(), json!(p));
    }
    if let Some(i) = args.index {
        input.insert("index".into(), json!(i));
    }
    if let Some(u) = &args.upscaler {
        input.insert("upscaler".into(), json!(u));
    }
    // The Midjourney actions that start from nothing take a mode; the rest follow up.
    let mj_starts = matches!(tt, MjAction::IMAGINE | MjAction::DESCRIBE | MjAction::BLEND);
    if provider == Provider::Midjourney
        && mj_starts
        && let Some(m) = &args.mode
    {
        input.entry("process_mode").or_insert(json!(m));
    }
    // A price does not depend on which task is followed up: fill the ids it needs.
    let needs_origin = match provider {
        Provider::Midjourney => !mj_starts,
        Provider::Luma => tt == LumaTask::REMOVE_WATERMARK,
        _ => false,
    };
    if needs_origin {
        input.entry("origin_task_id").or_insert(json!("origin"));
    }
    if provider == Provider::Luma
        && tt == LumaTask::EXTEND_VIDEO
        && !input.contains_key("generation_id")
    {
        input.entry("origin_task_id").or_insert(json!("origin"));
    }
    Ok(Value::Object(input))
}

/// Price a task and print the entitlement per plan.
pub fn price(config: &Config, args: &PriceArgs) -> Result<(), CliError> {
    let provider: Provider = args
        .model
        .parse()
        .map_err(|e| CliError::Usage(format!("--model: {e}")))?;
    if !task_types(provider).contains(&args.task_type.as_str()) {
        return Err(CliError::Usage(format!(
            "--task `{}` is not a {provider} task type; use one of: {}",
            args.task_type,
            task_types(provider).join(", ")
        )));
    }
    let mode = match &args.mode {
        Some(m) => Some(
            m.parse::<ProcessMode>()
                .map_err(|e| CliError::Usage(format!("--mode: {e}")))?,
        ),
        None => None,
    };
    let input = build_input(args, provider)?;
    let mut spec = TaskSpec::parse(
        provider.as_str(),
        &args.task_type,
        &input,
        &config.parse_options(),
    )
    .map_err(|e| match e {
        SpecError::Invalid { field, message } => CliError::Usage(format!(
            "{field}: {message}; give it with --prompt, --index, --upscaler or --input '{{...}}'"
        )),
        other => CliError::Usage(other.to_string()),
    })?;
    if let (TaskSpec::Midjourney(t), Some(m)) = (&mut spec, mode) {
        let version = t.version;
        t.inherit(m, version);
    }

    let ppu = config.prices.price(ServiceMode::Ppu, &spec);
    let byoa = config.prices.price(ServiceMode::Byoa, &spec);
    let dollars = config.prices.units_per_dollar.dollars(ppu);
    let mut plans = Vec::new();
    for plan in Plan::ALL {
        let mut entry = Map::new();
        for sm in ServiceMode::ALL {
            let verdict = match config.plans.entitlement(plan, sm, &spec) {
                Ok(()) => json!({"allowed": true}),
                Err(e) => json!({"allowed": false, "needs": e.needs, "reason": e.to_string()}),
            };
            entry.insert(sm.as_str().into(), verdict);
        }
        plans.push((plan, Value::Object(entry)));
    }

    if args.json {
        let mut obj = json!({
            "model": provider,
            "task_type": spec.task_type(),
            "ppu": {"kind": ppu.kind, "amount": ppu.amount, "usd": dollars},
            "byoa": {"kind": byoa.kind, "amount": byoa.amount},
            "plans": plans.iter().map(|(p, v)| (p.as_str().to_string(), v.clone())).collect::<Map<_, _>>(),
        });
        if let TaskSpec::Midjourney(t) = &spec {
            obj["process_mode"] = json!(t.process_mode);
            obj["version_row"] = json!(t.version.label());
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&obj).map_err(anyhow::Error::from)?
        );
        return Ok(());
    }

    let detail = match &spec {
        TaskSpec::Midjourney(t) => format!(" ({} mode, {} row)", t.process_mode, t.version.label()),
        _ => String::new(),
    };
    println!("{provider} {}{detail}", spec.task_type());
    println!(
        "  PPU:  {} {}  (${dollars:.3})",
        ppu.amount,
        ppu.kind.as_str()
    );
    println!("  BYOA: {} {}", byoa.amount, byoa.kind.as_str());
    println!("  may run it:");
    for (plan, v) in &plans {
        let cell = |sm: &str| {
            if v[sm]["allowed"] == json!(true) {
                "yes".to_string()
            } else {
                match v[sm]["needs"].as_str() {
                    Some(n) => format!("no (needs {n})"),
                    None => "no".to_string(),
                }
            }
        };
        println!(
            "    {:<11} PPU {:<22} BYOA {}",
            plan.as_str(),
            cell("ppu"),
            cell("byoa")
        );
    }
    Ok(())
}
