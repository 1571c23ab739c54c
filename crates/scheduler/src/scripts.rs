//! The Lua scripts, each prefixed with `lua/common.lua`.

use redis::Script;

const COMMON: &str = include_str!("../lua/common.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

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
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripts")
    }
}

impl Scripts {
    pub(crate) fn load() -> Self {
        Scripts {
            submit: script(include_str!("../lua/submit.lua")),
            claim: script(include_str!("../lua/claim.lua")),
            heartbeat: script(include_str!("../lua/heartbeat.lua")),
            report: script(include_str!("../lua/report.lua")),
            complete: script(include_str!("../lua/complete.lua")),
            fail: script(include_str!("../lua/fail.lua")),
            cancel: script(include_str!("../lua/cancel.lua")),
            reap: script(include_str!("../lua/reap.lua")),
            account_upsert: script(include_str!("../lua/account_upsert.lua")),
            account_state: script(include_str!("../lua/account_state.lua")),
            tenant: script(include_str!("../lua/tenant.lua")),
            top_up: script(include_str!("../lua/topup.lua")),
        }
    }
}
