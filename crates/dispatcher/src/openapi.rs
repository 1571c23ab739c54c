//! `GET /openapi.json`: the API described from the code's own tables — the route table
//! below (a test checks that the router serves every entry), the task types of
//! `switchyard-core`, the error codes of `error.rs`.

use serde_json::{Map, Value, json};
use switchyard_core::Provider;
use switchyard_core::task::task_types;

/// One route: method, path, summary, who may call it, whether it takes a JSON body.
pub struct Route {
    /// HTTP method (lowercase).
    pub method: &'static str,
    /// Path with `{param}`s.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// `key` (X-API-Key), `admin` (bearer) or `none`.
    pub auth: &'static str,
    /// The request body's schema name, if any.
    pub body: Option<&'static str>,
}

/// Every route the dispatcher serves.
pub const ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: "/api/v1/task",
        summary: "Create a task",
        auth: "key",
        body: Some("CreateTask"),
    },
    Route {
        method: "get",
        path: "/api/v1/task/{task_id}",
        summary: "Get a task; ?wait=S long-polls up to 60 s",
        auth: "key",
        body: None,
    },
    Route {
        method: "delete",
        path: "/api/v1/task/{task_id}",
        summary: "Cancel a staged or pending task",
        auth: "key",
        body: None,
    },
    Route {
        method: "post",
        path: "/api/v1/task/{task_id}/cancel",
        summary: "Cancel a staged or pending task (the same as DELETE)",
        auth: "key",
        body: None,
    },
    Route {
        method: "delete",
        path: "/api/v1/tasks",
        summary: "Cancel every cancellable task created before ?created_before=<unix s> of ?model=<model|all>",
        auth: "key",
        body: None,
    },
    Route {
        method: "post",
        path: "/api/v1/task/fetch",
        summary: "Get up to 100 tasks",
        auth: "key",
        body: Some("Fetch"),
    },
    Route {
        method: "post",
        path: "/api/v1/accounts",
        summary: "Add a hosted account (BYOA)",
        auth: "key",
        body: Some("Account"),
    },
    Route {
        method: "get",
        path: "/api/v1/accounts",
        summary: "List your hosted accounts",
        auth: "key",
        body: None,
    },
    Route {
        method: "patch",
        path: "/api/v1/accounts/{account_id}",
        summary: "Enable, disable, weight, capacity, backup, pacing, daily cap, active window",
        auth: "key",
        body: Some("AccountPatch"),
    },
    Route {
        method: "delete",
        path: "/api/v1/accounts/{account_id}",
        summary: "Remove a hosted account",
        auth: "key",
        body: None,
    },
    Route {
        method: "post",
        path: "/api/v1/accounts/{account_id}/check",
        summary: "Probe a hosted account now; its state after the probe",
        auth: "key",
        body: None,
    },
    Route {
        method: "get",
        path: "/api/v1/me",
        summary: "Plan, caps, balances, load",
        auth: "key",
        body: None,
    },
    Route {
        method: "get",
        path: "/api/v1/usage",
        summary: "The plan's data report: ?days=N (1 on Developer, 7 on Premium) per day and provider",
        auth: "key",
        body: None,
    },
    Route {
        method: "patch",
        path: "/api/v1/me/settings",
        summary: "default_service_mode, failover_max_wait_s, notification_webhook",
        auth: "key",
        body: Some("Settings"),
    },
    Route {
        method: "post",
        path: "/admin/v1/tenants",
        summary: "Create a tenant; the API key is shown once",
        auth: "admin",
        body: Some("Tenant"),
    },
    Route {
        method: "get",
        path: "/admin/v1/tenants",
        summary: "List tenants",
        auth: "admin",
        body: None,
    },
    Route {
        method: "patch",
        path: "/admin/v1/tenants/{tenant_id}",
        summary: "Change a tenant's plan or name",
        auth: "admin",
        body: Some("Tenant"),
    },
    Route {
        method: "post",
        path: "/admin/v1/tenants/{tenant_id}/credits",
        summary: "Top up (Idempotency-Key required)",
        auth: "admin",
        body: Some("Credit"),
    },
    Route {
        method: "post",
        path: "/admin/v1/pool/accounts",
        summary: "Add a PPU pool account",
        auth: "admin",
        body: Some("Account"),
    },
    Route {
        method: "get",
        path: "/admin/v1/pool/accounts",
        summary: "List the PPU pool",
        auth: "admin",
        body: None,
    },
    Route {
        method: "patch",
        path: "/admin/v1/pool/accounts/{account_id}",
        summary: "Change a pool account",
        auth: "admin",
        body: Some("AccountPatch"),
    },
    Route {
        method: "delete",
        path: "/admin/v1/pool/accounts/{account_id}",
        summary: "Remove a pool account",
        auth: "admin",
        body: None,
    },
    Route {
        method: "post",
        path: "/admin/v1/pool/accounts/{account_id}/check",
        summary: "Probe a pool account now; its state after the probe",
        auth: "admin",
        body: None,
    },
    Route {
        method: "get",
        path: "/admin/v1/stats",
        summary: "Queue depth, in flight, pool per provider",
        auth: "admin",
        body: None,
    },
    Route {
        method: "get",
        path: "/files/{task_id}/{name}",
        summary: "A hosted result file, at the signed link a task shows (?expires=&sig=; no API key); 403 for a link not signed so, 404 once the task's retention ended",
        auth: "none",
        body: None,
    },
    Route {
        method: "get",
        path: "/healthz",
        summary: "Process up",
        auth: "none",
        body: None,
    },
    Route {
        method: "get",
        path: "/readyz",
        summary: "Redis reachable",
        auth: "none",
        body: None,
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics",
        auth: "none",
        body: None,
    },
    Route {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        auth: "none",
        body: None,
    },
];

/// The stable reasons of a refused request (`data.error.reason`).
pub const ERROR_CODES: &[&str] = &[
    "unauthorized",
    "forbidden",
    "not_entitled",
    "insufficient_quota",
    "invalid_request",
    "unknown_model",
    "unknown_task_type",
    "prompt_rejected",
    "task_not_found",
    "account_not_found",
    "tenant_not_found",
    "not_found",
    "method_not_allowed",
    "not_cancellable",
    "idempotency_key_reused",
    "account_exists",
    "payload_too_large",
    "rate_limited",
    "queue_full",
    "no_account",
    "invalid_credentials",
    "account_disabled",
    "unavailable",
];

fn schemas() -> Value {
    let models: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
    let mut by_model = Map::new();
    for p in Provider::ALL {
        by_model.insert(
            p.as_str().into(),
            json!({"type": "string", "enum": task_types(p)}),
        );
    }
    json!({
        "CreateTask": {"type": "object", "required": ["model", "task_type", "input"], "additionalProperties": false,
            "properties": {
                "model": {"type": "string", "enum": models},
                "task_type": {"type": "string", "description": "per model", "x-task-types": by_model},
                "input": {"type": "object", "description": "task-type specific; unknown fields are refused"},
                "config": {"type": "object", "additionalProperties": false, "properties": {
                    "service_mode": {"type": "string", "enum": ["", "public", "private"]},
                    "webhook_config": {"type": "object", "additionalProperties": false, "properties": {
                        "endpoint": {"type": "string", "format": "uri"}, "secret": {"type": "string", "writeOnly": true}}}}}}},
        "Fetch": {"type": "object", "required": ["task_ids"], "properties": {"task_ids": {"type": "array", "maxItems": 100, "items": {"type": "string"}}}},
        "Account": {"type": "object", "required": ["provider", "credentials"], "properties": {
            "provider": {"type": "string", "enum": models}, "name": {"type": "string"},
            "credentials": {"type": "object", "writeOnly": true},
            "capacity": {"type": "object", "properties": {"relax": {"type": "integer"}, "fast": {"type": "integer"}, "turbo": {"type": "integer"}}},
            "concurrency": {"type": "integer", "minimum": 1}, "weight": {"type": "integer", "minimum": 1}, "backup": {"type": "boolean"},
            "modes": {"type": "array", "items": {"type": "string", "enum": ["relax", "fast", "turbo"]}},
            "pacing": {"type": "object", "nullable": true, "properties": {"min_gap_s": {"type": "number"}, "max_gap_s": {"type": "number"}}},
            "daily_cap": {"description": "submissions per day: n, or {relax, fast, turbo} (Midjourney); null: none", "nullable": true},
            "active_window": {"type": "object", "nullable": true, "properties": {"start": {"type": "string", "example": "09:00"}, "end": {"type": "string", "example": "17:00"}, "tz": {"type": "string", "example": "Europe/Paris"}}}}},
        "AccountPatch": {"type": "object", "properties": {"enabled": {"type": "boolean"}, "weight": {"type": "integer"},
            "capacity": {"type": "object"}, "concurrency": {"type": "integer"}, "backup": {"type": "boolean"}, "name": {"type": "string"},
            "pacing": {"type": "object", "nullable": true, "properties": {"min_gap_s": {"type": "number"}, "max_gap_s": {"type": "number"}}},
            "daily_cap": {"description": "submissions per day: n, or {relax, fast, turbo} (Midjourney); null: none", "nullable": true},
            "active_window": {"type": "object", "nullable": true, "properties": {"start": {"type": "string", "example": "09:00"}, "end": {"type": "string", "example": "17:00"}, "tz": {"type": "string", "example": "Europe/Paris"}}}}},
        "Settings": {"type": "object", "properties": {"default_service_mode": {"type": "string", "enum": ["public", "private"]},
            "failover_max_wait_s": {"type": "integer"}, "notification_webhook": {"type": "object", "nullable": true},
            "max_queued": {"type": "integer", "minimum": 1, "nullable": true, "description": "tasks waiting per provider; at most the plan's"},
            "max_pending_s": {"type": "integer", "minimum": 0, "maximum": 604800, "description": "a task waiting longer fails expired_in_queue; 0: never"}}},
        "Tenant": {"type": "object", "properties": {"name": {"type": "string"}, "plan": {"type": "string", "enum": ["hobbyist", "developer", "premium", "enterprise"]},
            "approved_extras": {"type": "boolean", "description": "output fields the plan gives upon approval (PATCH only)"}}},
        "Credit": {"type": "object", "required": ["kind", "amount"], "properties": {
            "kind": {"type": "string", "enum": ["credits", "mj_quota", "suno_quota", "luma_quota", "gpts_quota"]}, "amount": {"type": "integer", "minimum": 1}}},
        "Envelope": {"type": "object", "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "data": {}}},
        "Error": {"type": "object", "properties": {"code": {"type": "integer"}, "message": {"type": "string"},
            "data": {"type": "object", "properties": {"detail": {"nullable": true}, "error": {"type": "object", "properties": {
                "code": {"type": "integer", "description": "the HTTP status"}, "message": {"type": "string"},
                "raw_message": {"type": "string"}, "detail": {"type": "object", "nullable": true},
                "reason": {"type": "string", "enum": ERROR_CODES}, "field": {"type": "string", "description": "JSON pointer"}}}}}}},
    })
}

/// The document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES {
        let mut op = json!({"summary": r.summary, "responses": {
            "200": {"description": "success", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}},
            "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}});
        match r.auth {
            "key" => op["security"] = json!([{"apiKey": []}]),
            "admin" => op["security"] = json!([{"admin": []}]),
            _ => {}
        }
        if let Some(b) = r.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{b}")}}}});
        }
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = json!(params);
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Switchyard", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Task queue and account load balancer for generative-AI providers (GoAPI-compatible task API)."},
        "paths": paths,
        "components": {"schemas": schemas(), "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "admin": {"type": "http", "scheme": "bearer"}}},
    })
}
