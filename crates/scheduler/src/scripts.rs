//! The Lua scripts, assembled from `lua/includes/`.
//!
//! Each script names what it uses with `--- @include "<name>"` lines (as BullMQ's
//! `src/commands/includes` do); an include names its own the same way. A script is its
//! includes, each once and after the ones it needs, then its body. The `config` include is
//! written here from the configuration: the scheduler settings, the Midjourney credit
//! conversion and the plan table reach the scripts from their one home.

use std::collections::HashSet;
use std::fmt::Write as _;

use redis::Script;
use switchyard_core::config::Config;
use switchyard_core::plan::Plan;

/// The include files, by the name scripts use for them.
pub(crate) const INCLUDES: &[(&str, &str)] = &[
    ("keys", include_str!("../lua/includes/keys.lua")),
    ("time", include_str!("../lua/includes/time.lua")),
    ("events", include_str!("../lua/includes/events.lua")),
    ("lanes", include_str!("../lua/includes/lanes.lua")),
    ("balance", include_str!("../lua/includes/balance.lua")),
    ("batch", include_str!("../lua/includes/batch.lua")),
    ("quota", include_str!("../lua/includes/quota.lua")),
    ("accounts", include_str!("../lua/includes/accounts.lua")),
    ("running", include_str!("../lua/includes/running.lua")),
    ("usage", include_str!("../lua/includes/usage.lua")),
    ("tasks", include_str!("../lua/includes/tasks.lua")),
    ("due", include_str!("../lua/includes/due.lua")),
];

/// The scripts' own files, by name.
pub(crate) const SCRIPTS: &[(&str, &str)] = &[
    ("submit", include_str!("../lua/submit.lua")),
    ("claim", include_str!("../lua/claim.lua")),
    ("heartbeat", include_str!("../lua/heartbeat.lua")),
    ("report", include_str!("../lua/report.lua")),
    ("complete", include_str!("../lua/complete.lua")),
    ("fail", include_str!("../lua/fail.lua")),
    ("cancel", include_str!("../lua/cancel.lua")),
    ("reap", include_str!("../lua/reap.lua")),
    ("account_upsert", include_str!("../lua/account_upsert.lua")),
    ("account_state", include_str!("../lua/account_state.lua")),
    ("tenant", include_str!("../lua/tenant.lua")),
    ("topup", include_str!("../lua/topup.lua")),
    ("files_due", include_str!("../lua/files_due.lua")),
    ("pace", include_str!("../lua/pace.lua")),
    ("probe_take", include_str!("../lua/probe_take.lua")),
    ("probe_done", include_str!("../lua/probe_done.lua")),
    ("session", include_str!("../lua/session.lua")),
];

/// Every script, loaded once per process (`EVALSHA`, loaded on first `NOSCRIPT`).
pub(crate) struct Scripts {
    pub submit: Script,
    pub claim: Script,
    pub heartbeat: Script,
    pub report: Script,
    pub complete: Script,
    pub fail: Script,
    pub cancel: Script,
    pub reap: Script,
    pub account_upsert: Script,
    pub account_state: Script,
    pub tenant: Script,
    pub top_up: Script,
    pub files_due: Script,
    pub pace: Script,
    pub probe_take: Script,
    pub probe_done: Script,
    pub session: Script,
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripts")
    }
}

impl Scripts {
    pub(crate) fn load(config: &Config) -> Self {
        let config_lua = config_include(config);
        let script = |name: &str| Script::new(&assemble(name, &config_lua));
        Scripts {
            submit: script("submit"),
            claim: script("claim"),
            heartbeat: script("heartbeat"),
            report: script("report"),
            complete: script("complete"),
            fail: script("fail"),
            cancel: script("cancel"),
            reap: script("reap"),
            account_upsert: script("account_upsert"),
            account_state: script("account_state"),
            tenant: script("tenant"),
            top_up: script("topup"),
            files_due: script("files_due"),
            pace: script("pace"),
            probe_take: script("probe_take"),
            probe_done: script("probe_done"),
            session: script("session"),
        }
    }
}

/// The `config` include: the values scripts take from the configuration.
fn config_include(config: &Config) -> String {
    let s = &config.scheduler;
    let conv = &config.prices.mj_auto_conversion;
    let rates = &config.prices.units_per_dollar;
    let steps: Vec<String> = conv.steps.iter().map(u64::to_string).collect();
    // A task always carries its tenant's retention; one that somehow does not is kept as
    // long as the longest plan keeps anything.
    let retention_fallback_s = Plan::ALL
        .iter()
        .map(|p| config.plans.get(*p).retention_secs())
        .max()
        .unwrap_or(0);
    let mut out = String::from("-- The configuration, written by scripts.rs.\n");
    let _ = writeln!(
        out,
        "local CONFIG = {{max_attempts = {}, backoff_ms = {}, backoff_max_ms = {}, \
         cooldown_ms = {}, no_fast_pause_ms = {}, events_max_len = '{}', \
         retention_fallback_s = '{}', conversion = {{below = {}, steps = {{{}}}, num = {}, \
         den = {}}}, usage_keep_s = {}, usage_bucket_ratio = {}, usage_spent_unit = {}, \
         clock_offset_ms = {}, probe_backoff_ms = {}, probe_backoff_max_ms = {}}}",
        s.max_attempts,
        s.retry_backoff_ms,
        s.retry_backoff_max_ms,
        s.default_cooldown_ms,
        s.no_fast_pause_ms,
        s.events_max_len,
        retention_fallback_s,
        conv.below,
        steps.join(", "),
        rates.mj_quota,
        rates.credits,
        crate::usage::keep_secs(config),
        crate::usage::BUCKET_RATIO,
        crate::usage::SPENT_UNIT,
        s.clock_offset_ms,
        s.probe_backoff_ms,
        s.probe_backoff_max_ms,
    );
    out
}

/// The names a file includes, in order.
fn includes_of(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("--- @include \"")?.strip_suffix('"'))
}

/// A script's text: its includes, each once and after its own includes, then its body.
/// Panics on an unknown include or a cycle (both are mistakes in this crate's files,
/// which the tests load).
pub(crate) fn assemble(name: &str, config_lua: &str) -> String {
    fn visit<'a>(
        name: &'a str,
        config_lua: &'a str,
        done: &mut HashSet<&'a str>,
        open: &mut Vec<&'a str>,
        out: &mut String,
    ) {
        if done.contains(name) {
            return;
        }
        assert!(
            !open.contains(&name),
            "Lua include cycle: {open:?} -> {name}"
        );
        let text = if name == "config" {
            config_lua
        } else {
            INCLUDES
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("unknown Lua include {name:?}"))
                .1
        };
        open.push(name);
        for dep in includes_of(text) {
            visit(dep, config_lua, done, open, out);
        }
        open.pop();
        done.insert(name);
        out.push_str(text);
        out.push('\n');
    }
    let body = SCRIPTS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("unknown Lua script {name:?}"))
        .1;
    let mut out = String::new();
    let mut done = HashSet::new();
    let mut open = Vec::new();
    for dep in includes_of(body) {
        visit(dep, config_lua, &mut done, &mut open, &mut out);
    }
    out.push_str(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script assembles, each include comes once, and no script carries an include
    /// it does not name (directly or through another).
    #[test]
    fn scripts_assemble_from_their_includes() {
        let config = config_include(&Config::default());
        for (name, body) in SCRIPTS {
            let text = assemble(name, &config);
            for (inc, inc_text) in INCLUDES {
                let first_line = inc_text.lines().next().unwrap();
                assert!(
                    text.matches(first_line).count() <= 1,
                    "{name}: include {inc} appears twice"
                );
            }
            assert!(text.ends_with(body), "{name}: its body comes last");
        }
        let submit = assemble("submit", &config);
        assert!(submit.contains("local function hold("));
        let heartbeat = assemble("heartbeat", &config);
        assert!(
            !heartbeat.contains("local function hold("),
            "heartbeat names neither quota nor tasks"
        );
    }

    /// The config include carries the configured values, not defaults of its own.
    #[test]
    fn config_values_come_from_the_configuration() {
        let mut c = Config::default();
        c.scheduler.max_attempts = 7;
        c.scheduler.events_max_len = 12345;
        c.prices.mj_auto_conversion.steps = vec![900, 300];
        let lua = config_include(&c);
        assert!(lua.contains("max_attempts = 7"), "{lua}");
        assert!(lua.contains("events_max_len = '12345'"), "{lua}");
        assert!(lua.contains("steps = {900, 300}"), "{lua}");
    }

    /// No script or include spells a value that has its home in the configuration or
    /// the plan table (a line saying `not configured` holds a number that only happens to
    /// equal one).
    #[test]
    fn no_lua_literal_repeats_a_configured_value() {
        let c = Config::default();
        let s = &c.scheduler;
        let mut values: Vec<u64> = vec![
            s.retry_backoff_max_ms,
            s.default_cooldown_ms,
            s.no_fast_pause_ms,
            s.events_max_len,
            c.prices.mj_auto_conversion.below,
            c.prices.units_per_dollar.mj_quota,
            c.prices.units_per_dollar.credits,
        ];
        values.extend(c.prices.mj_auto_conversion.steps.iter().copied());
        values.extend(Plan::ALL.iter().map(|p| c.plans.get(*p).retention_secs()));
        for (name, text) in SCRIPTS.iter().chain(INCLUDES) {
            for (i, line) in text.lines().enumerate() {
                if line.contains("not configured") {
                    continue;
                }
                let code = line.split("--").next().unwrap_or("");
                for word in code.split(|ch: char| !ch.is_ascii_digit()) {
                    if let Ok(n) = word.parse::<u64>() {
                        assert!(
                            !values.contains(&n),
                            "{name}.lua:{}: the literal {n} repeats a configured value",
                            i + 1
                        );
                    }
                }
            }
        }
    }
}
