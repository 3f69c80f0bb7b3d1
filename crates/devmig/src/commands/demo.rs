//! `demo`: a guided tour of two example hosts.
//!
//! The hosts are kernel-shaped trees of plain files in a temp dir. Plain
//! files accept any write, so no node carries a kernel `migration_version`
//! attribute here: every version and decision comes from devmig's vendor
//! models (the userspace adapter), and the output says so.
use std::io::Write;
use std::time::Duration;

use devmig_core::tree::{ExampleHost, TreeBuilder, example_host, example_uuids::*};
use devmig_core::{Checker, DeviceId, SysfsRoot};
use devmig_vendors::Registry;

use crate::cli::Output;
use crate::error::CliError;
use crate::output::line;

struct Lab {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    a: Checker,
    b: Checker,
}

fn build(registry: &Registry) -> Result<Lab, CliError> {
    let io_err = |what: &str| {
        let what = what.to_string();
        move |e| CliError::Io { what: what.clone(), source: e }
    };
    let da = tempfile::Builder::new().prefix("devmig-demo-hostA-").tempdir().map_err(io_err("creating host A"))?;
    let db = tempfile::Builder::new().prefix("devmig-demo-hostB-").tempdir().map_err(io_err("creating host B"))?;
    example_host(&TreeBuilder::new(da.path()), ExampleHost::A).map_err(io_err("building host A"))?;
    example_host(&TreeBuilder::new(db.path()), ExampleHost::B).map_err(io_err("building host B"))?;
    let t = Duration::from_secs(5);
    let a = Checker::new(SysfsRoot::new(da.path()), registry.clone(), t);
    let b = Checker::new(SysfsRoot::new(db.path()), registry.clone(), t);
    Ok(Lab { _dirs: (da, db), a, b })
}

fn pair(lab: &Lab, title: &str, src: &str, dst: &str, out: &mut dyn Write) -> Result<(), CliError> {
    line(out, format!("\n## {title}\n$ devmig check hostA:{src} hostB:{dst}"))?;
    let version = lab.a.version(&src.parse::<DeviceId>()?)?;
    let Some(v) = version.side.version.clone() else {
        line(out, format!("source has no version: {:?}", version.reason))?;
        return Ok(());
    };
    let report = lab.b.check_version(&v, &dst.parse::<DeviceId>()?)?;
    let report = devmig_core::CheckReport { from: version.side, ..report };
    super::check::render(&report, false, Output::Table, out)
}

/// `devmig demo`.
pub fn demo(registry: &Registry, out: &mut dyn Write) -> Result<i32, CliError> {
    let lab = build(registry)?;
    line(out, "devmig demo: two example hosts, built as kernel-shaped sysfs trees in temp dirs.")?;
    line(out, "These trees are plain files, which accept any write, so no device here has a kernel")?;
    line(out, "migration_version attribute: devmig's vendor models supply versions and decisions")?;
    line(out, "(\"[model ...]\" below), exactly as on a host whose kernel lacks the attribute.")?;
    line(out, "\n# host A")?;
    super::inventory::list(&lab.a, Output::Table, out)?;

    pair(
        &lab,
        "Intel GVT-g: GVTg_V5_4 x2 -> GVTg_V5_8 x4 (same share, newer minor driver): compatible",
        A_VGPU,
        B_VGPU_HALF,
        out,
    )?;
    pair(&lab, "Intel GVT-g: half a GPU -> an eighth: incompatible", A_VGPU, B_VGPU_EIGHTH, out)?;
    pair(&lab, "Intel GVT-g: to an mdev type before the target exists", A_VGPU, "0000:00:02.0/i915-GVTg_V5_2", out)?;
    pair(&lab, "NVMe VF: same remote storage, spelled differently: compatible", "0000:3d:00.1", "0000:3d:00.1", out)?;
    pair(&lab, "NVMe VF: other remote storage: incompatible", "0000:3d:00.1", "0000:3d:00.2", out)?;
    pair(&lab, "QAT hybrid: SIOV mdev -> VF with a crypto superset: compatible", A_QAT, "0000:6b:00.1", out)?;
    pair(&lab, "mtty: mtty-2 -> same type: identical", A_MTTY, "mtty/mtty-2", out)?;
    pair(&lab, "mtty: 2 ports -> 1 port: incompatible", A_MTTY, B_MTTY, out)?;

    line(out, format!("\n## step a then step b: targets on host B for host A's vGPU {A_VGPU}"))?;
    let version = lab.a.version(&A_VGPU.parse::<DeviceId>()?)?.side.version.unwrap_or_default();
    let args = crate::cli::MatchArgs {
        device: None,
        source: crate::cli::SourceArgs { version: Some(version), version_file: None },
    };
    super::matching::matching(&lab.b, &args, Output::Table, out)?;

    line(out, "\nNot shown yet: the kernel write path, mdev create/remove through sysfs, and fault")?;
    line(out, "injection. They need the FUSE sysfs emulator (simfs), which is not built yet.")?;
    Ok(0)
}
