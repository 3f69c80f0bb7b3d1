//! Vendor model figures: one accept decision and one version parse per model (target: < 1 µs each),
//! the NVIDIA (mdev and SR-IOV) and variant-driver models included.
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use devmig_vendors::models::{GvtVersion, MttyVersion, NvidiaVersion, NvmeVersion, QatVersion, VariantVersion};
use devmig_vendors::{Catalog, DeviceFacts, Registry};

fn pairs(r: &Registry) -> Vec<(&'static str, String, DeviceFacts)> {
    let gvt_src = DeviceFacts::mdev("0000:00:02.0", "8086:591d", "i915", Some("1.2.0"), "i915-GVTg_V5_4", 2);
    let gvt_dst = DeviceFacts::mdev("0000:00:02.0", "8086:591d", "i915", Some("1.3.0"), "i915-GVTg_V5_8", 4);
    let url = "nvme+tcp://storage1.example:4420/nqn.2024-01.example:vol-a";
    let nvme = |v| DeviceFacts::pci_function("144d:a824", true, "nvme", Some(v)).with_param("remote_storage_url", url);
    let qat = |v, a| DeviceFacts::pci_function("8086:4941", true, "4xxxvf", Some(v)).with_param("crypto_algorithms", a);
    let mtty = |v| DeviceFacts::mdev("mtty", "", "mtty", Some(v), "mtty-2", 1);
    let nvidia = DeviceFacts::mdev("0000:81:00.0", "10de:13f2", "nvidia", Some("535.161.05"), "nvidia-11", 1)
        .with_param("mdev_type/name", "GRID M60-0B");
    let nvidia_type = DeviceFacts::mdev_type("0000:81:00.0", "10de:13f2", "nvidia", Some("535.161.05"), "nvidia-11")
        .with_param("name", "GRID M60-0B");
    let l40s_vf = DeviceFacts::pci_function("10de:26b9", true, "nvidia", Some("550.54.16"))
        .with_param("nvidia/current_vgpu_type", "1148")
        .with_param("physfn/device", "0x26b9");
    let l40s_type = DeviceFacts::mdev_type("0000:41:00.6", "10de:26b9", "nvidia", Some("550.54.16"), "nvidia-1148")
        .with_param("nvidia/current_vgpu_type", "0")
        .with_param("name", "NVIDIA L40S-2Q")
        .with_param("physfn/device", "0x26b9");
    let mlx5 = DeviceFacts::pci_function("15b3:101e", true, "mlx5_vfio_pci", None)
        .with_param("physfn/infiniband/*/fw_ver", "28.41.1000")
        .with_param("physfn/infiniband/*/board_id", "MT_0000000838");
    let qat_vfio = |id| {
        DeviceFacts::pci_function(id, true, "qat_vfio_pci", None).with_param("physfn/qat/cfg_services", "sym;asym")
    };
    let v = |d: &DeviceFacts| r.version(d).expect("bench devices are supported");
    vec![
        ("i915", v(&gvt_src), gvt_dst),
        ("nvme", v(&nvme("1.4.0")), nvme("1.5.1")),
        ("qat", v(&qat("1.2.0", "aes-gcm sha256")), qat("1.2.3", "aes-gcm sha256 chacha20-poly1305")),
        ("mtty", v(&mtty("0.1")), mtty("0.1")),
        ("nvidia_mdev", v(&nvidia), nvidia_type),
        ("nvidia_sriov", v(&l40s_vf), l40s_type),
        ("vfio_variant_mlx5", v(&mlx5), mlx5.clone()),
        ("vfio_variant_qat", v(&qat_vfio("8086:4943")), qat_vfio("8086:4941")),
    ]
}

fn accept(c: &mut Criterion) {
    let r = Registry::new(Catalog::embedded());
    let mut g = c.benchmark_group("accept");
    for (name, source, target) in pairs(&r) {
        assert!(r.evaluate(&source, &target).expect("evaluates").accepted());
        assert_eq!(r.decide(&source, &target).expect("decides"), None);
        g.bench_function(format!("{name}_decide"), |b| b.iter(|| r.decide(black_box(&source), black_box(&target))));
        g.bench_function(format!("{name}_explained"), |b| {
            b.iter(|| r.evaluate(black_box(&source), black_box(&target)))
        });
    }
    g.finish();
}

fn parse(c: &mut Criterion) {
    let r = Registry::new(Catalog::embedded());
    let p = pairs(&r);
    let mut g = c.benchmark_group("parse");
    g.bench_function("i915", |b| b.iter(|| GvtVersion::parse(black_box(&p[0].1))));
    g.bench_function("i915_v5_format", |b| b.iter(|| GvtVersion::parse(black_box("8086-591d-GVTg_V5_8-01020003"))));
    g.bench_function("nvme", |b| b.iter(|| NvmeVersion::parse(black_box(&p[1].1))));
    g.bench_function("qat", |b| b.iter(|| QatVersion::parse(black_box(&p[2].1))));
    g.bench_function("mtty", |b| b.iter(|| MttyVersion::parse(black_box(&p[3].1))));
    g.bench_function("nvidia_sriov", |b| b.iter(|| NvidiaVersion::parse(black_box(&p[5].1))));
    g.bench_function("vfio_variant_mlx5", |b| b.iter(|| VariantVersion::parse(black_box(&p[6].1))));
    g.finish();
}

criterion_group!(benches, accept, parse);
criterion_main!(benches);
