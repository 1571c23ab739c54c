//! The deployment files parse, and the Grafana dashboard only charts metrics the code
//! really exports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if !p.ends_with("target") {
                files(&p, ext, out);
            }
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| ext.contains(&x))
        {
            out.push(p);
        }
    }
}

#[test]
fn every_yaml_file_parses_and_kubernetes_objects_are_complete() {
    let mut yaml = Vec::new();
    files(&root().join("deploy"), &["yml", "yaml"], &mut yaml);
    assert!(yaml.len() >= 8, "{yaml:?}");
    let mut scaled = Vec::new();
    for f in &yaml {
        let text = std::fs::read_to_string(f).unwrap();
        let docs = yaml_rust2::YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!docs.is_empty(), "{} is empty", f.display());
        if f.parent().unwrap().ends_with("k8s") {
            for d in &docs {
                assert!(
                    d["apiVersion"].as_str().is_some() && d["kind"].as_str().is_some(),
                    "{}",
                    f.display()
                );
                if d["kind"].as_str() == Some("ScaledObject") {
                    let q = d["spec"]["triggers"][0]["metadata"]["query"]
                        .as_str()
                        .unwrap();
                    assert!(q.contains("switchyard_queue_depth"), "{q}");
                    scaled.push(
                        d["spec"]["scaleTargetRef"]["name"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    );
                }
            }
        }
    }
    scaled.sort();
    assert_eq!(
        scaled,
        [
            "switchyard-worker-gpts",
            "switchyard-worker-luma",
            "switchyard-worker-midjourney",
            "switchyard-worker-suno"
        ]
    );
    let compose = std::fs::read_to_string(root().join("deploy/docker-compose.yml")).unwrap();
    let c = &yaml_rust2::YamlLoader::load_from_str(&compose).unwrap()[0];
    for svc in [
        "redis",
        "dispatcher",
        "worker-midjourney",
        "worker-suno",
        "worker-luma",
        "worker-gpts",
        "prometheus",
        "grafana",
    ] {
        assert!(!c["services"][svc].is_badvalue(), "compose lacks {svc}");
    }
    let redis_conf = std::fs::read_to_string(root().join("deploy/redis.conf")).unwrap();
    assert!(
        redis_conf.contains("maxmemory-policy noeviction") && redis_conf.contains("appendonly yes")
    );
}

#[test]
fn the_grafana_dashboard_charts_only_exported_metrics() {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/dashboards/switchyard.json")).unwrap(),
    )
    .unwrap();
    let mut sources = Vec::new();
    files(&root().join("crates"), &["rs"], &mut sources);
    let code: String = sources
        .iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "src"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let mut checked = 0;
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("switchyard_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .fold(name.clone(), |n, s| {
                        n.strip_suffix(s).map(str::to_string).unwrap_or(n)
                    });
                assert!(
                    code.contains(&format!("\"{base}\"")),
                    "panel `{}` uses {name}, which no code exports",
                    p["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10);
}
