//! `demo`: a guided tour of two emulated hosts, mounted with simfs in temp dirs.
use std::io::Write;
use std::time::Duration;

use devmig_core::tree::example_uuids::{
    A_MTTY, A_QAT, A_VGPU, B_MTTY, B_VGPU_EIGHTH as B_EIGHTH, B_VGPU_HALF as B_HALF,
};
use devmig_core::{CheckReport, Checker, DeviceId, SysfsRoot};
use devmig_simfs::spec::{EXAMPLE_HOST_A, EXAMPLE_HOST_B};
use devmig_simfs::{HostSpec, Mounted};
use devmig_vendors::Registry;

use crate::backend::Backend;
use crate::cli::Output;
use crate::error::CliError;
use crate::output::line;

/// The target mdev the demo creates on host B (for host A's QAT SIOV mdev).
const NEW_MDEV: &str = "c0ffee00-0000-4000-8000-000000000001";

struct Host {
    checker: Checker,
    mounted: Mounted,
    _dir: tempfile::TempDir,
}

fn mount(text: &str, name: &str, registry: &Registry) -> Result<Host, CliError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("devmig-demo-{name}-"))
        .tempdir()
        .map_err(|e| CliError::Io { what: "creating a mountpoint".into(), source: e })?;
    let host = HostSpec::from_toml(text, name, registry.catalog())?.build(registry.clone(), name)?;
    let mounted = devmig_simfs::mount(host, dir.path())?;
    let checker = Checker::new(SysfsRoot::new(dir.path()), registry.clone(), Duration::from_secs(5));
    Ok(Host { checker, mounted, _dir: dir })
}

fn id(s: &str) -> Result<DeviceId, CliError> {
    Ok(s.parse::<DeviceId>()?)
}

/// Reads `src`'s version on `a` and has `b` judge it; prints the report.
fn pair(a: &Host, b: &Host, title: &str, src: &str, dst: &str, out: &mut dyn Write) -> Result<CheckReport, CliError> {
    line(out, format!("\n## {title}\n$ devmig check hostA:{src} hostB:{dst}"))?;
    let (from, to) = (Backend::Local(a.checker.clone()), Backend::Local(b.checker.clone()));
    let report = crate::backend::cross(&from, &id(src)?, &to, &id(dst)?, false)?;
    super::check::render(&report, false, Output::Table, out)?;
    Ok(report)
}

/// `devmig demo`.
pub fn demo(registry: &Registry, out: &mut dyn Write) -> Result<i32, CliError> {
    super::sim::require_root("devmig demo")?;
    let a = mount(EXAMPLE_HOST_A, "hostA", registry)?;
    let b = mount(EXAMPLE_HOST_B, "hostB", registry)?;
    line(out, "devmig demo: two emulated hosts, mounted with simfs (a FUSE emulation of sysfs):")?;
    line(out, format!("  hostA on {}\n  hostB on {}", a.mounted.path().display(), b.mounted.path().display()))?;
    line(out, "Writes into migration_version go through the kernel's FUSE driver to the vendor model,")?;
    line(out, "which accepts or fails the write(2) with a real errno, as a driver would. ([kernel] below.)")?;
    line(out, "\n# hostA")?;
    super::inventory::list(&Backend::Local(a.checker.clone()), Output::Table, out)?;

    pair(
        &a,
        &b,
        "Intel GVT-g: GVTg_V5_4 x2 -> GVTg_V5_8 x4 (same share, newer minor): compatible",
        A_VGPU,
        B_HALF,
        out,
    )?;
    pair(
        &a,
        &b,
        "Intel GVT-g: half a GPU -> an eighth: the write fails with EINVAL; the model says why",
        A_VGPU,
        B_EIGHTH,
        out,
    )?;
    pair(&b, &a, "Intel GVT-g: newer minor driver -> older: incompatible (directional)", B_HALF, A_VGPU, out)?;
    pair(&a, &b, "NVMe VF: same remote storage, spelled differently: compatible", "0000:3d:00.1", "0000:3d:00.1", out)?;
    pair(&a, &b, "NVMe VF: other remote storage: incompatible", "0000:3d:00.1", "0000:3d:00.2", out)?;
    pair(
        &a,
        &b,
        "NVMe VF without a kernel attribute: devmig's model decides ([model])",
        "0000:3d:00.1",
        "0000:5e:00.2",
        out,
    )?;
    pair(&a, &b, "NVMe VF whose driver does not support migration: ENODEV", "0000:3d:00.1", "0000:5e:00.3", out)?;
    pair(&a, &b, "QAT hybrid: SIOV mdev -> VF with a crypto superset: compatible", A_QAT, "0000:6b:00.1", out)?;
    pair(&b, &a, "QAT: VF with chacha20 -> VF without it: incompatible", "0000:6b:00.1", "0000:6b:00.1", out)?;
    pair(&a, &b, "mtty: mtty-2 -> mtty-2 type: identical", A_MTTY, "mtty/mtty-2", out)?;
    pair(&a, &b, "mtty: 2 ports -> 1 port: incompatible", A_MTTY, B_MTTY, out)?;

    pair(
        &a,
        &b,
        "Before the target exists: a GVT-g type (compatible; hostB has 3/8 of its GPU free, so no room)",
        A_VGPU,
        "0000:00:02.0/i915-GVTg_V5_8",
        out,
    )?;
    let qat_type = "0000:6b:00.0/qat_4xxx-vqat";
    pair(&a, &b, "Before the target exists: the QAT SIOV type", A_QAT, qat_type, out)?;
    let type_dir = b.mounted.path().join("sys/class/mdev_bus/0000:6b:00.0/mdev_supported_types/qat_4xxx-vqat");
    let write = |path: &std::path::Path, data: &str| {
        std::fs::write(path, data).map_err(|e| CliError::Io { what: format!("writing {}", path.display()), source: e })
    };
    line(out, format!("\n## Create the target: echo {NEW_MDEV} > /sys/class/mdev_bus/{qat_type}/create"))?;
    write(&type_dir.join("create"), NEW_MDEV)?;
    pair(&a, &b, "Check the new mdev", A_QAT, NEW_MDEV, out)?;
    let mdev_dir = b.mounted.path().join(format!("sys/bus/mdev/devices/{NEW_MDEV}"));
    line(out, format!("\n## Remove it: echo 1 > /sys/bus/mdev/devices/{NEW_MDEV}/remove"))?;
    write(&mdev_dir.join("remove"), "1")?;
    line(out, format!("removed: {}", !mdev_dir.exists()))?;

    line(out, format!("\n## step a then step b on hostB for hostA's vGPU {A_VGPU}"))?;
    let version = a.checker.version(&id(A_VGPU)?)?.side.version.unwrap_or_default();
    let args = crate::cli::MatchArgs {
        device: None,
        source: crate::cli::SourceArgs { version: Some(version), version_file: None },
    };
    super::matching::matching(&Backend::Local(b.checker.clone()), &args, Output::Table, out)?;

    let (pa, pb) = (a.mounted.path().to_path_buf(), b.mounted.path().to_path_buf());
    a.mounted.unmount()?;
    b.mounted.unmount()?;
    line(out, format!("\nunmounted {} and {}", pa.display(), pb.display()))?;
    Ok(0)
}
