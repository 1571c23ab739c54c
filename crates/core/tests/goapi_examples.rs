//! Every request body GoAPI's and PiAPI's documentation prints for a served model parses
//! as it is (`testdata/goapi-examples/`, copied from the pages they cite); bodies for a
//! model Switchyard does not serve are refused as `unknown_model`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;
use switchyard_core::{ParseOptions, SpecError, TaskSpec};

/// Every documented create body: (file, body).
fn create_bodies() -> Vec<(String, Value)> {
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/goapi-examples/requests");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            if doc["method"] == "POST" && doc["path"] == "/api/v1/task" {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                out.push((name, doc["body"].clone()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 16, "the examples are missing: {}", out.len());
    out
}

#[test]
fn every_documented_body_of_a_served_model_parses() {
    let opts = ParseOptions::default();
    let mut failures = Vec::new();
    for (name, body) in create_bodies() {
        let model = body["model"].as_str().unwrap();
        let task_type = body["task_type"].as_str().unwrap();
        let parsed = TaskSpec::parse(model, task_type, &body["input"], &opts);
        match (model, parsed) {
            ("music-u", Err(SpecError::UnknownModel(_))) => {}
            ("music-u", other) => failures.push(format!("{name}: music-u gave {other:?}")),
            (_, Ok(spec)) => assert_eq!(spec.task_type(), canonical(task_type), "{name}"),
            (_, Err(e)) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "refused:\n{}", failures.join("\n"));
}

/// The task type a documented name stands for.
fn canonical(task_type: &str) -> &str {
    match task_type {
        "generate_lyrics" => "lyrics",
        t => t,
    }
}
