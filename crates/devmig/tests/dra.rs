//! `devmig dra` checked by the real things: the ResourceSlices and ResourceClaims pass
//! `kubernetes-validate --strict` for Kubernetes 1.34 (PyPI, in the test venv), and the
//! selectors, run by Google's CEL (`cel-expr-python`, integrations/kubernetes/cel_check.py), are
//! true on a device exactly when devmig's step a admits it, for generated fleets of devices.
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use devmig_core::tree::{ExampleHost, TreeBuilder, example_host, example_uuids::A_VGPU};
use devmig_fleet::sim::HostPlan;
use devmig_testkit::placement_lab::venv;
use devmig_vendors::dra::{attributes, selector};
use devmig_vendors::{Catalog, Registry};
use proptest::prelude::*;
use serde_json::{Value, json};

mod common;

use common::{devmig_at as devmig, ok};

fn tool(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(path.exists(), "{} is missing: run `bash integrations/openstack-venv.sh`", path.display());
    path
}

fn kubernetes_validate(files: &[&std::path::Path]) {
    let o = Command::new(tool("kubernetes-validate"))
        .args(["-k", "1.34.0", "--strict", "--no-warn"])
        .args(files)
        .output()
        .expect("kubernetes-validate");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success() && !text.contains("ERROR"), "{text}");
    assert!(text.matches("passed for resource").count() >= files.len(), "{text}");
}

#[test]
fn slices_and_claims_pass_the_kubernetes_schemas() {
    let root = tempfile::tempdir().expect("root");
    example_host(&TreeBuilder::new(root.path()), ExampleHost::A).expect("tree");
    let slices = ok(&devmig(root.path(), &["dra", "slices", "--node", "Worker-1.example"]));
    let docs: Vec<Value> = slices.split("\n---\n").map(|d| serde_json::from_str(d).expect("json")).collect();
    assert_eq!(docs.len(), 1);
    let spec = &docs[0]["spec"];
    assert_eq!((spec["driver"].as_str(), spec["nodeName"].as_str()), (Some("devmig.io"), Some("Worker-1.example")));
    assert_eq!(spec["pool"]["name"], "worker-1-example");
    let names: Vec<&str> =
        spec["devices"].as_array().expect("devices").iter().map(|d| d["name"].as_str().expect("name")).collect();
    assert!(names.contains(&"0000-3d-00-1") && names.contains(&"0000-00-02-0-i915-gvtg-v5-4"), "{names:?}");
    let claim = ok(&devmig(root.path(), &["dra", "claim", A_VGPU, "--name", "VM1 vgpu"]));
    let dir = tempfile::tempdir().expect("dir");
    let (s, c) = (dir.path().join("slices.json"), dir.path().join("claim.json"));
    std::fs::write(&s, &slices).expect("write");
    std::fs::write(&c, &claim).expect("write");
    kubernetes_validate(&[&s, &c]);
    // The selector the claim carries is the one `dra selector` prints.
    let expr = ok(&devmig(root.path(), &["dra", "selector", A_VGPU]));
    let claim: Value = serde_json::from_str(&claim).expect("json");
    assert_eq!(
        claim["spec"]["devices"]["requests"][0]["exactly"]["selectors"][0]["cel"]["expression"],
        expr.trim_end()
    );
    assert_eq!(claim["metadata"]["name"], "vm1-vgpu");
}

/// Runs cel_check.py on `devices` x `selectors` with devmig's step-a verdicts.
fn cel_agrees(devices: &[Value], selectors: &[String], expected: &[Vec<bool>]) -> Result<String, String> {
    let script: PathBuf =
        [env!("CARGO_MANIFEST_DIR"), "..", "..", "integrations", "kubernetes", "cel_check.py"].iter().collect();
    let mut child = Command::new(tool("python"))
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    let input = json!({ "devices": devices, "selectors": selectors, "expected": expected });
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write");
    let o = child.wait_with_output().expect("wait");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    if o.status.success() { Ok(text) } else { Err(text) }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// For the devices and sources of a few generated hosts (attributes from facts, and from
    /// the kernel's string for some, plus a source no model knows), CEL's verdict on each
    /// compiled selector is devmig's step a.
    #[test]
    fn cel_selectors_are_step_a(seed in any::<u64>(), hosts in 2usize..5, kernel in any::<bool>()) {
        let r = Registry::new(Catalog::embedded());
        let mut devices = Vec::new();
        let mut attrs_list = Vec::new();
        let mut sources = std::collections::BTreeSet::from(["acme-1.0-opaque".to_string(), "mtty-v1-0.1.40-mtty-2".to_string()]);
        // QAT VFs on qat_vfio_pci: a set that must be equal (the PF's services), not a superset.
        let qat = ["sym;asym", "asym;sym", "sym", "sym;dc"].map(|services| {
            devmig_vendors::DeviceFacts::pci_function("8086:4941", true, "qat_vfio_pci", None)
                .with_param("physfn/qat/cfg_services", services)
        });
        let planned = (0..hosts).flat_map(|i| HostPlan::draw(seed, i, 16).facts().into_iter().map(|(_, _, f)| f));
        for facts in planned.chain(qat) {
                let Ok(version) = r.version(&facts) else { continue };
                let described = r.describe(Some(&facts), kernel.then_some(version.as_str())).expect("describe");
                let dra = attributes(&described.attributes).expect("within DRA's limits");
                let attrs: serde_json::Map<String, Value> = dra
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            devmig_vendors::dra::DraValue::String(s) => json!({ "string": s }),
                            devmig_vendors::dra::DraValue::Int(n) => json!({ "int": n }),
                            devmig_vendors::dra::DraValue::Bool(b) => json!({ "bool": b }),
                            devmig_vendors::dra::DraValue::Version(v) => json!({ "version": v }),
                        };
                        (k.clone(), v)
                    })
                    .collect();
                devices.push(json!({ "attributes": attrs }));
                attrs_list.push(described.attributes);
                if !matches!(facts.kind, devmig_vendors::FactsKind::MdevType) {
                    sources.insert(version);
                }
        }
        let mut selectors = Vec::new();
        let mut expected = Vec::new();
        for s in &sources {
            let req = r.requirement(s).expect("requirement");
            selectors.push(selector(&req).expect("within DRA's limits"));
            expected.push(attrs_list.iter().map(|a| req.satisfied_by(a)).collect::<Vec<_>>());
        }
        let admitted: usize = expected.iter().flatten().filter(|b| **b).count();
        prop_assert!(admitted > 0, "no pair admitted: the test would prove nothing");
        let verdict = cel_agrees(&devices, &selectors, &expected);
        prop_assert!(verdict.is_ok(), "{}", verdict.err().unwrap_or_default());
    }
}
