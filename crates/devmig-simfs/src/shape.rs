//! What a vendor driver shows in sysfs beyond the mdev core's attributes, where simfs knows the
//! driver; measured on Linux 6.1 for mtty (kernel/vm), taken from the driver source otherwise.

/// The driver-specific part of an mdev parent's tree and behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DriverShape {
    /// The errno of a `create` on a full parent. mtty's probe fails with ENOSPC; the mdev core
    /// answers EUSERS for drivers that let it count instances.
    pub full_errno: i32,
    /// Whether mdevs have a writable `aggregator` (GVT-g's aggregation, the follow-up RFC).
    pub aggregates: bool,
    /// The mdev driver's name on the mdev bus (`/sys/bus/mdev/drivers/<name>`, `DRIVER=` of an
    /// mdev's uevent): `intel_vgpu_mdev` for i915 (kvmgt.c), the driver's own name otherwise.
    pub mdev_driver: String,
    /// The driver's own attributes of an mdev, as (relative path, content); `{uuid}` is
    /// replaced by the mdev's UUID. mtty has `vendor/sample_mdev_dev`.
    pub mdev_files: &'static [(&'static str, &'static str)],
    /// Whether the parent hosts mdevs of one type at a time (NVIDIA's time-sliced vGPUs: once a
    /// vGPU exists, the other types show 0 available instances).
    pub single_type: bool,
}

impl DriverShape {
    /// The shape of `driver` (empty for a parent without a driver).
    pub fn of(driver: &str) -> Self {
        match driver {
            "mtty" => DriverShape {
                full_errno: libc::ENOSPC,
                aggregates: false,
                mdev_driver: "mtty".into(),
                mdev_files: &[("vendor/sample_mdev_dev", "This is MDEV {uuid}\n")],
                single_type: false,
            },
            "i915" => DriverShape {
                full_errno: libc::EUSERS,
                aggregates: true,
                mdev_driver: "intel_vgpu_mdev".into(),
                mdev_files: &[],
                single_type: false,
            },
            // The vGPU Manager: no aggregation; its vfio module (nvidia-vgpu-vfio) binds the
            // mdevs (the module name; the driver name on a real host was not checked).
            "nvidia" => DriverShape {
                full_errno: libc::EUSERS,
                aggregates: false,
                mdev_driver: "nvidia-vgpu-vfio".into(),
                mdev_files: &[],
                single_type: true,
            },
            other => DriverShape {
                full_errno: libc::EUSERS,
                aggregates: true,
                mdev_driver: other.into(),
                mdev_files: &[],
                single_type: false,
            },
        }
    }

    /// A type's `name` and `description` (None: the driver has no show_description). mtty's
    /// names are per port count ("Single port serial"); NVIDIA's are `GRID <profile>` with the
    /// profile's figures as `key=value` pairs (as real M60 and P40 hosts show them, from the
    /// catalog row); other drivers show the type id here.
    pub fn type_text(driver: &str, type_id: &str, catalog: &devmig_vendors::Catalog) -> (String, Option<String>) {
        match (driver, catalog.mtty_ports(type_id), catalog.nvidia_type(type_id)) {
            ("mtty", Some(1), _) => ("Single port serial".into(), None),
            ("mtty", Some(2), _) => ("Dual port serial".into(), None),
            ("mtty", _, _) => (type_id.into(), None),
            ("nvidia", _, Some(t)) => (
                format!("GRID {}", t.profile),
                Some(format!(
                    "num_heads={}, frl_config={}, framebuffer={}M, max_resolution={}, max_instance={}",
                    t.heads, t.frl, t.framebuffer_mib, t.max_resolution, t.max_instances
                )),
            ),
            _ => (type_id.into(), Some(format!("{type_id} instance"))),
        }
    }
}
