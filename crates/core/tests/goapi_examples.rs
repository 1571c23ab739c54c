//! Every request body GoAPI's and PiAPI's documentation prints for a served model parses
//! as it is (`testdata/goapi-examples/`, copied from the pages they cite); bodies for a
//! model Switchyard does not serve are refused as `unknown_model`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use switchyard_core::{ParseOptions, SpecError, TaskSpec};

#[test]
fn every_documented_body_of_a_served_model_parses() {
    let opts = ParseOptions::default();
    let mut failures = Vec::new();
    for (name, body) in switchyard_test_support::goapi_create_bodies() {
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
