//! Operator commands over the HTTP API: `tenant`, `account`, `task`, `stats`.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use switchyard_dispatcher::client::{Client, ClientError};

use crate::tables::CliError;

/// Where the API is and who is calling.
#[derive(Debug, Args)]
pub struct Target {
    /// The dispatcher's base URL.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Admin token (for tenant, pool account and stats commands).
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// A tenant's API key (for its own accounts and tasks).
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Print the raw JSON.
    #[arg(long, global = true)]
    json: bool,
}

/// `switchyard tenant …`.
#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Create a tenant; prints its API key (shown once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// hobbyist | developer | premium | enterprise
        #[arg(long, default_value = "hobbyist")]
        plan: String,
    },
    /// List tenants.
    List,
    /// Change a tenant's plan.
    SetPlan {
        /// Tenant id.
        tenant_id: String,
        /// The new plan.
        plan: String,
    },
    /// Credit a balance (idempotent per --key).
    TopUp {
        /// Tenant id.
        tenant_id: String,
        /// credits | mj_quota | suno_quota | luma_quota | gpts_quota
        #[arg(long)]
        kind: String,
        /// How much.
        #[arg(long)]
        amount: i64,
        /// Idempotency key (default: a new one; pass your own to make retries safe).
        #[arg(long)]
        key: Option<String>,
    },
}

/// `switchyard account …`.
#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Add an account: the PPU pool's (--pool, admin token) or the tenant's (API key).
    Add {
        /// Add to the operator's PPU pool.
        #[arg(long)]
        pool: bool,
        /// midjourney | suno | luma | gpts
        #[arg(long)]
        provider: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Credentials as JSON, e.g. '{"cookie": "…"}' (write-only).
        #[arg(long)]
        credentials: String,
        /// Concurrency (Suno, Luma, GPTs).
        #[arg(long)]
        concurrency: Option<u32>,
        /// Midjourney capacity per mode, e.g. relax=3,fast=3,turbo=0.
        #[arg(long)]
        capacity: Option<String>,
        /// The gap between two submissions, in seconds, drawn from a range: 3-8.
        #[arg(long)]
        pacing: Option<String>,
        /// Submissions per day (all modes).
        #[arg(long)]
        daily_cap: Option<u32>,
        /// Hours it takes new tasks: 09:00-17:00 or 22:00-06:00@Asia/Tokyo.
        #[arg(long)]
        window: Option<String>,
    },
    /// Probe an account now and show its state after the probe.
    Check {
        /// Account id.
        account_id: String,
        /// The PPU pool's.
        #[arg(long)]
        pool: bool,
    },
    /// List accounts (pool with --pool).
    List {
        /// The PPU pool's.
        #[arg(long)]
        pool: bool,
    },
    /// Disable an account.
    Disable {
        /// Account id.
        account_id: String,
        /// The PPU pool's.
        #[arg(long)]
        pool: bool,
    },
}

/// `switchyard task …` (with the tenant's API key).
#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Show a task.
    Get {
        /// Task id.
        task_id: String,
        /// Wait up to this many seconds for it to finish.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Cancel a staged or pending task.
    Cancel {
        /// Task id.
        task_id: String,
    },
}

/// The dispatcher's client for a command: the admin token's or the API key's, and how
/// its answers are printed.
struct Http<'a> {
    t: &'a Target,
    rt: tokio::runtime::Runtime,
}

impl<'a> Http<'a> {
    fn new(t: &'a Target) -> Result<Self, CliError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Other(e.into()))?;
        Ok(Http { t, rt })
    }

    /// A client with the admin token.
    fn admin(&self) -> Result<Client, CliError> {
        let token = self.t.admin_token.as_deref().ok_or_else(|| {
            CliError::Usage(
                "this needs the admin token: --admin-token or SWITCHYARD_ADMIN_TOKEN".into(),
            )
        })?;
        Ok(Client::admin(&self.t.url, token))
    }

    /// A client with the tenant's API key.
    fn tenant(&self) -> Result<Client, CliError> {
        let key = self.t.api_key.as_deref().ok_or_else(|| {
            CliError::Usage("this needs a tenant's API key: --api-key or SWITCHYARD_API_KEY".into())
        })?;
        Ok(Client::new(&self.t.url, key))
    }

    /// The admin client for the pool's accounts, the tenant's for its own.
    fn accounts(&self, pool: bool) -> Result<Client, CliError> {
        if pool { self.admin() } else { self.tenant() }
    }

    /// Run one call: an API refusal is a usage error (exit 2) saying the code, field and
    /// message; no answer at all says to check the URL (exit 1).
    fn call<F: Future<Output = Result<Value, ClientError>>>(
        &self,
        call: F,
    ) -> Result<Value, CliError> {
        self.rt.block_on(call).map_err(|e| {
            if e.status == 0 {
                return CliError::Other(anyhow::anyhow!(
                    "cannot reach {} ({}); is the dispatcher running? (--url)",
                    self.t.url,
                    e.message
                ));
            }
            let field = e.field.map(|f| format!(" ({f})")).unwrap_or_default();
            let code = if e.reason == "unknown" {
                "error"
            } else {
                &e.reason
            };
            CliError::Usage(format!("{code}{field}: {}", e.message))
        })
    }

    fn print(&self, v: &Value, human: impl FnOnce(&Value)) {
        if self.t.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            human(v);
        }
    }
}

/// `switchyard tenant`.
pub fn tenant(t: &Target, cmd: TenantCmd) -> Result<(), CliError> {
    let h = Http::new(t)?;
    let admin = h.admin()?;
    match cmd {
        TenantCmd::Create { name, plan } => {
            let v = h.call(admin.create_tenant(&name, &plan))?;
            h.print(&v, |v| {
                println!(
                    "tenant  {}\nplan    {}\napi key {}   (shown once: store it now)",
                    v["tenant_id"].as_str().unwrap_or(""),
                    v["plan"].as_str().unwrap_or(""),
                    v["api_key"].as_str().unwrap_or("")
                );
            });
        }
        TenantCmd::List => {
            let v = h.call(admin.tenants())?;
            h.print(&v, |v| {
                for t in v.as_array().into_iter().flatten() {
                    println!(
                        "{:<36} {:<11} {}",
                        t["tenant_id"].as_str().unwrap_or(""),
                        t["plan"].as_str().unwrap_or(""),
                        t["name"].as_str().unwrap_or("")
                    );
                }
            });
        }
        TenantCmd::SetPlan { tenant_id, plan } => {
            let v = h.call(admin.set_plan(&tenant_id, &plan))?;
            h.print(&v, |v| {
                println!(
                    "{} is now on {}",
                    tenant_id,
                    v["plan"].as_str().unwrap_or("")
                )
            });
        }
        TenantCmd::TopUp {
            tenant_id,
            kind,
            amount,
            key,
        } => {
            let key = key.unwrap_or_else(|| format!("cli-{}", uuid::Uuid::now_v7()));
            let v = h.call(admin.top_up(&tenant_id, &kind, amount, &key))?;
            h.print(&v, |v| {
                for (k, n) in v["balances"].as_object().into_iter().flatten() {
                    println!("{k:<11} {n}");
                }
            });
        }
    }
    Ok(())
}

/// `switchyard account`.
pub fn account(t: &Target, cmd: AccountCmd) -> Result<(), CliError> {
    let h = Http::new(t)?;
    match cmd {
        AccountCmd::Add {
            pool,
            provider,
            name,
            credentials,
            concurrency,
            capacity,
            pacing,
            daily_cap,
            window,
        } => {
            let creds: Value = serde_json::from_str(&credentials).map_err(|e| {
                CliError::Usage(format!(
                    "--credentials must be a JSON object ({e}), e.g. '{{\"cookie\": \"…\"}}'"
                ))
            })?;
            let mut body = json!({"provider": provider, "credentials": creds});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(c) = concurrency {
                body["concurrency"] = json!(c);
            }
            if let Some(c) = capacity {
                let mut cap = serde_json::Map::new();
                for part in c.split(',').filter(|p| !p.is_empty()) {
                    let (m, n) = part.split_once('=').ok_or_else(|| {
                        CliError::Usage("--capacity looks like relax=3,fast=3,turbo=0".into())
                    })?;
                    let n: u32 = n
                        .trim()
                        .parse()
                        .map_err(|_| CliError::Usage(format!("--capacity {m}: not a number")))?;
                    cap.insert(m.trim().to_string(), json!(n));
                }
                body["capacity"] = Value::Object(cap);
            }
            if let Some(p) = pacing {
                let (lo, hi) = p
                    .split_once('-')
                    .and_then(|(a, b)| {
                        Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?))
                    })
                    .ok_or_else(|| CliError::Usage("--pacing looks like 3-8 (seconds)".into()))?;
                body["pacing"] = json!({"min_gap_s": lo, "max_gap_s": hi});
            }
            if let Some(n) = daily_cap {
                body["daily_cap"] = json!(n);
            }
            if let Some(w) = window {
                let (hours, tz) = match w.split_once('@') {
                    Some((h, z)) => (h, Some(z)),
                    None => (w.as_str(), None),
                };
                let (start, end) = hours.split_once('-').ok_or_else(|| {
                    CliError::Usage(
                        "--window looks like 09:00-17:00 or 22:00-06:00@Asia/Tokyo".into(),
                    )
                })?;
                body["active_window"] = json!({"start": start.trim(), "end": end.trim(), "tz": tz});
            }
            let c = h.accounts(pool)?;
            let v = if pool {
                h.call(c.add_pool_account(&body))?
            } else {
                h.call(c.add_account(&body))?
            };
            h.print(&v, |v| {
                println!(
                    "added {} ({}, {})",
                    v["account_id"].as_str().unwrap_or(""),
                    v["provider"].as_str().unwrap_or(""),
                    v["state"].as_str().unwrap_or("")
                )
            });
        }
        AccountCmd::List { pool } => {
            let c = h.accounts(pool)?;
            let v = if pool {
                h.call(c.pool_accounts())?
            } else {
                h.call(c.accounts())?
            };
            h.print(&v, |v| {
                println!(
                    "{:<48} {:<10} {:<13} {:<25} {:<9} {:<11} {:<25} {:<24} name",
                    "account",
                    "provider",
                    "state",
                    "until / reason",
                    "in flight",
                    "today/cap",
                    "next allowed",
                    "window"
                );
                for a in v.as_array().into_iter().flatten() {
                    println!("{}", account_row(a));
                }
            });
        }
        AccountCmd::Check { account_id, pool } => {
            let c = h.accounts(pool)?;
            let v = if pool {
                h.call(c.check_pool_account(&account_id))?
            } else {
                h.call(c.check_account(&account_id))?
            };
            h.print(&v, |v| println!("{}", account_row(v)));
        }
        AccountCmd::Disable { account_id, pool } => {
            let c = h.accounts(pool)?;
            let off = json!({"enabled": false});
            let v = if pool {
                h.call(c.update_pool_account(&account_id, &off))?
            } else {
                h.call(c.update_account(&account_id, &off))?
            };
            h.print(&v, |v| {
                println!("{} is {}", account_id, v["state"].as_str().unwrap_or(""))
            });
        }
    }
    Ok(())
}

/// One account as a line of `switchyard account list`: state with until when or why,
/// load, today's submissions against its daily cap, next allowed time, window.
fn account_row(a: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let state = text(&a["state"]);
    let detail = match (a["state_until"].as_str(), a["state_reason"].as_str()) {
        (Some(u), _) => u.to_string(),
        (None, Some(r)) => r.to_string(),
        (None, None) => "-".to_string(),
    };
    let cap = &a["daily_cap"];
    let cap = if cap.is_null() {
        "-".to_string()
    } else if let Some(n) = cap["all"].as_u64() {
        n.to_string()
    } else {
        ["relax", "fast", "turbo"]
            .iter()
            .filter_map(|m| cap[m].as_u64().map(|n| format!("{}{n}", &m[..1])))
            .collect::<Vec<_>>()
            .join(",")
    };
    let window = &a["active_window"];
    let window = if window.is_null() {
        "always".to_string()
    } else {
        format!(
            "{}-{} {}",
            text(&window["start"]),
            text(&window["end"]),
            text(&window["tz"])
        )
    };
    format!(
        "{:<48} {:<10} {:<13} {:<25} {:<9} {:<11} {:<25} {:<24} {}",
        text(&a["account_id"]),
        text(&a["provider"]),
        state,
        detail,
        a["in_flight"],
        format!("{}/{cap}", a["today"]["total"]),
        a["next_allowed_at"].as_str().unwrap_or("now"),
        window,
        text(&a["name"])
    )
}

/// `switchyard task`.
pub fn task(t: &Target, cmd: TaskCmd) -> Result<(), CliError> {
    let h = Http::new(t)?;
    let c = h.tenant()?;
    let v = match cmd {
        TaskCmd::Get { task_id, wait } => h.call(c.get_task(&task_id, wait))?,
        TaskCmd::Cancel { task_id } => h.call(c.cancel(&task_id))?,
    };
    h.print(&v, |v| {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
    });
    Ok(())
}

/// `switchyard stats [--watch]`.
pub fn stats(t: &Target, watch: bool) -> Result<(), CliError> {
    let h = Http::new(t)?;
    let admin = h.admin()?;
    loop {
        let v = h.call(admin.dashboard())?;
        if watch {
            print!("\x1b[2J\x1b[H");
        }
        h.print(&v, |v| {
            for (name, p) in v["providers"].as_object().into_iter().flatten() {
                println!(
                    "{name}: {} queued, {} in flight",
                    p["queued"], p["in_flight"]
                );
                for t in p["tenants"].as_array().into_iter().flatten() {
                    let cap = t["cap"]
                        .as_u64()
                        .map_or("no cap".to_string(), |c| c.to_string());
                    println!(
                        "  tenant {:<28} {:<10} PPU {}/{}  BYOA {}  queued {}",
                        t["name"].as_str().unwrap_or(""),
                        t["plan"].as_str().unwrap_or(""),
                        t["ppu_in_flight"],
                        cap,
                        t["byoa_in_flight"],
                        t["queued"]
                    );
                }
                for a in p["accounts"].as_array().into_iter().flatten() {
                    println!(
                        "  pool   {:<28} {:<13} load {}/{}",
                        a["name"].as_str().unwrap_or(""),
                        a["state"].as_str().unwrap_or(""),
                        a["in_flight"],
                        a["capacity"]
                    );
                }
            }
        });
        if !watch {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod account_row_tests {
    use super::*;

    #[test]
    fn a_row_shows_state_today_against_the_cap_next_time_and_window() {
        let a = json!({"account_id": "acc_midjourney_1", "provider": "midjourney", "name": "main",
            "state": "resting", "state_until": "2026-12-03T00:00:00.000Z", "state_reason": "daily_cap",
            "in_flight": 1, "today": {"relax": 2, "fast": 3, "turbo": 0, "total": 5},
            "daily_cap": {"all": 5}, "next_allowed_at": "2026-12-03T00:00:00.000Z",
            "active_window": {"start": "22:00", "end": "06:00", "tz": "Asia/Tokyo"}});
        let row = account_row(&a);
        for part in [
            "resting",
            "2026-12-03T00:00:00.000Z",
            "5/5",
            "22:00-06:00 Asia/Tokyo",
            "main",
        ] {
            assert!(row.contains(part), "{part} in {row}");
        }
        let b = json!({"account_id": "acc_suno_1", "provider": "suno", "name": "s", "state": "disabled",
            "state_until": null, "state_reason": "invalid_credentials", "in_flight": 0,
            "today": {"default": 0, "total": 0}, "daily_cap": {"fast": 9, "relax": 4},
            "next_allowed_at": null, "active_window": null});
        let row = account_row(&b);
        for part in [
            "disabled",
            "invalid_credentials",
            "0/r4,f9",
            "now",
            "always",
        ] {
            assert!(row.contains(part), "{part} in {row}");
        }
    }
}
