//! The `switchyard plans` and `switchyard price` commands, run as a user runs them.

mod common;

use common::FAST_V6_IMAGINE;

fn switchyard(args: &[&str]) -> (i32, String, String) {
    common::run(args, &[])
}

#[test]
fn plans_prints_the_caps_of_every_plan() {
    let (code, out, _) = switchyard(&["plans"]);
    assert_eq!(code, 0);
    let line = |label: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` row in:\n{out}"))
            .split_whitespace()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
    };
    assert_eq!(line("midjourney concurrent jobs"), ["3", "9", "30", "30"]);
    assert_eq!(line("suno generation concurrency"), ["2", "10", "30", "30"]);
    assert_eq!(line("gpts active conversations"), ["—", "10", "200", "200"]);
}

#[test]
fn plans_json_is_the_whole_table() {
    let (code, out, _) = switchyard(&["plans", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plans"]["premium"]["ppu_caps"]["midjourney"], 30);
    assert_eq!(v["prices"]["midjourney"]["turbo_v6"][0], 32);
}

#[test]
fn price_of_a_fast_v6_imagine() {
    let (code, out, err) = switchyard(&FAST_V6_IMAGINE);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ppu"]["amount"], 14);
    assert_eq!(v["ppu"]["kind"], "mj_quota");
    assert_eq!(v["byoa"]["amount"], 0);
    assert_eq!(v["plans"]["hobbyist"]["ppu"]["allowed"], true);
}

#[test]
fn price_names_the_plan_a_feature_needs() {
    let (code, out, err) = switchyard(&[
        "price",
        "--model",
        "suno",
        "--task",
        "generate_music_custom",
        "--prompt",
        "la la",
        "--input",
        r#"{"continue_clip_id": "clip1"}"#,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ppu"]["amount"], 10);
    assert_eq!(v["plans"]["hobbyist"]["ppu"]["allowed"], false);
    assert_eq!(v["plans"]["hobbyist"]["ppu"]["needs"], "developer");
}

#[test]
fn follow_ups_take_the_mode_given() {
    let (code, out, err) = switchyard(&[
        "price",
        "--model",
        "midjourney",
        "--task",
        "upscale",
        "--upscaler",
        "4x",
        "--mode",
        "turbo",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ppu"]["amount"], 120);
}

#[test]
fn bad_arguments_say_what_to_do() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["price", "--model", "kling", "--task", "x"],
            "expected one of: midjourney",
        ),
        (
            &["price", "--model", "suno", "--task", "imagine"],
            "use one of: generate_music",
        ),
        (
            &["price", "--model", "midjourney", "--task", "upscale"],
            "/input/index",
        ),
        (
            &[
                "price",
                "--model",
                "midjourney",
                "--task",
                "imagine",
                "--prompt",
                "x",
                "--mode",
                "warp",
            ],
            "relax, fast, turbo",
        ),
        (
            &[
                "price",
                "--model",
                "midjourney",
                "--task",
                "imagine",
                "--input",
                "{nope",
            ],
            "--input is not valid JSON",
        ),
    ];
    for (args, hint) in cases {
        let (code, out, err) = switchyard(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(hint), "{args:?}: `{err}` lacks `{hint}`");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_bad_config_file_names_the_key() {
    let dir = std::env::temp_dir().join(format!("sy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[scheduler]\nlease_ms = 5\n").unwrap();
    let (code, _, err) = switchyard(&["--config", path.to_str().unwrap(), "plans"]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code, 2);
    assert!(err.contains("scheduler.lease_ms"), "{err}");
}
