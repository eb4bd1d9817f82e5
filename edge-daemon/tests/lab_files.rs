//! The Vagrant and containerlab labs cannot run here; what can be checked
//! is: the edge configs validate, the Vagrantfile parses (`ruby -c`), the
//! provision scripts parse (`sh -n`), and every containerlab link names a
//! defined node.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vagrant_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vagrant")
}

#[test]
fn edge_configs_validate() {
    for n in [1, 2] {
        let path = vagrant_dir().join(format!("provision/edge{n}.yaml"));
        edged_config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn vagrantfile_and_scripts_parse() {
    let out = Command::new("ruby")
        .arg("-c")
        .arg(vagrant_dir().join("Vagrantfile"))
        .output()
        .expect("ruby (Debian package ruby) must be installed: make deps");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for e in std::fs::read_dir(vagrant_dir().join("provision")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "sh") {
            let ok = Command::new("sh")
                .arg("-n")
                .arg(&p)
                .status()
                .unwrap()
                .success();
            assert!(ok, "{} does not parse", p.display());
        }
    }
}

#[test]
fn containerlab_links_name_defined_nodes() {
    let text = std::fs::read_to_string(vagrant_dir().join("edged-lab.clab.yml")).unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("containerlab file is YAML");
    let nodes = doc["topology"]["nodes"]
        .as_object()
        .expect("topology.nodes");
    assert!(nodes.len() >= 8, "ToR, 2 edges, 4 proxies, client");
    let links = doc["topology"]["links"].as_array().expect("topology.links");
    let mut ends = 0;
    for l in links {
        let eps = l["endpoints"].as_array().unwrap();
        assert_eq!(eps.len(), 2, "{l}");
        for ep in eps {
            let node = match ep {
                serde_json::Value::String(s) => s.split(':').next().unwrap().to_string(),
                v => v["node"].as_str().unwrap().to_string(),
            };
            assert!(nodes.contains_key(&node), "link to undefined node {node}");
            ends += 1;
        }
    }
    assert_eq!(ends, 14, "7 links");
    for bind in nodes
        .values()
        .filter_map(|n| n["binds"].as_array())
        .flatten()
    {
        let src = bind.as_str().unwrap().split(':').next().unwrap();
        assert!(
            vagrant_dir().join(src).exists(),
            "bind source {src} missing"
        );
    }
}
