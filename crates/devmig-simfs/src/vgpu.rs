//! SR-IOV vGPUs (NVIDIA vGPU 17 and later, the "vendor-specific VFIO framework"): each VF of a
//! PF with `vgpu` has `nvidia/creatable_vgpu_types` and `nvidia/current_vgpu_type`.
//!
//! Shapes and semantics as the sources show them: the listing is a header `ID    : vGPU Name`
//! then `%-5d : %s` lines, only the header once the VF has a type or nothing more fits;
//! `current_vgpu_type` reads `%d` (0: none) and takes a decimal number (kstrtol: else EINVAL);
//! a number gives the VF that type, 0 clears it; either on a VF in the other state is EPERM
//! (the vGPU Manager's sysfs code, code index id 4488975679, and harvester/pcidevices
//! pkg/util/gpuhelper for a real L40S listing). A time-sliced GPU holds one type at a time:
//! once a VF has a type, the other VFs list only that type until its instances run out; a
//! number the GPU does not offer is ENODEV, another type than the one in use EINVAL, a full
//! GPU ENOSPC (the upstream nvidia-vgpu RFC series, code index id 21762583637).
use devmig_vendors::NvidiaType;

use crate::host::{EINVAL, ENODEV, Errno, Host, strip_newline};

impl Host {
    /// The vGPU types of `vf`'s GPU, as the catalog describes them: (number, row).
    fn vgpu_types(&self, vf: &str) -> Result<Vec<(u32, &NvidiaType)>, Errno> {
        let pf = self.pci.get(vf).and_then(|f| f.physfn.as_deref()).and_then(|pf| self.pci.get(pf)).ok_or(ENODEV)?;
        let types = pf.spec.vgpu.as_ref().ok_or(ENODEV)?;
        let catalog = self.registry.catalog();
        Ok(types
            .types
            .iter()
            .filter_map(|id| Some((devmig_core::vf_vgpu::type_number(id)?, catalog.nvidia_type(id)?)))
            .collect())
    }

    /// The numbers of the types the other VFs of `vf`'s PF have now, one entry per VF.
    fn vgpus_in_use(&self, vf: &str) -> Vec<u32> {
        let pf = self.pci.get(vf).and_then(|f| f.physfn.clone());
        self.pci
            .iter()
            .filter(|(addr, f)| addr.as_str() != vf && f.physfn.is_some() && f.physfn == pf)
            .filter_map(|(_, f)| f.vgpu.filter(|n| *n != 0))
            .collect()
    }

    /// The types `vf` can take now: none once it has one; else those of the type in use on the
    /// GPU while it has room, or every type of an idle GPU.
    fn creatable(&self, vf: &str) -> Result<Vec<(u32, &NvidiaType)>, Errno> {
        if self.pci.get(vf).and_then(|f| f.vgpu).ok_or(ENODEV)? != 0 {
            return Ok(Vec::new());
        }
        let in_use = self.vgpus_in_use(vf);
        let types = self.vgpu_types(vf)?;
        Ok(match in_use.first() {
            None => types,
            Some(n) => {
                types.into_iter().filter(|(t, row)| t == n && in_use.len() < row.max_instances as usize).collect()
            }
        })
    }

    /// `creatable_vgpu_types` of `vf`.
    pub(crate) fn vgpu_listing(&self, vf: &str) -> Result<String, Errno> {
        let mut out = String::from("ID    : vGPU Name\n");
        for (n, row) in self.creatable(vf)? {
            out.push_str(&format!("{n:<5} : NVIDIA {}\n", row.profile));
        }
        Ok(out)
    }

    /// A write to `current_vgpu_type` of `vf`.
    pub(crate) fn set_vgpu_type(&mut self, vf: &str, data: &[u8]) -> Result<(), Errno> {
        let text = std::str::from_utf8(strip_newline(data)).map_err(|_| EINVAL)?;
        let n: i64 = text.trim().parse().map_err(|_| EINVAL)?;
        let current = self.pci.get(vf).and_then(|f| f.vgpu).ok_or(ENODEV)?;
        let want = match (n, current) {
            (0, 0) | (1.., 1..) => return Err(Errno(libc::EPERM)),
            (0, _) => 0,
            (1.., 0) => {
                let n = u32::try_from(n).map_err(|_| ENODEV)?;
                let offered = self.vgpu_types(vf)?;
                let (_, row) = offered.iter().find(|(t, _)| *t == n).ok_or(ENODEV)?;
                let in_use = self.vgpus_in_use(vf);
                match in_use.first() {
                    Some(other) if *other != n => return Err(EINVAL),
                    _ if in_use.len() >= row.max_instances as usize => return Err(Errno(libc::ENOSPC)),
                    _ => n,
                }
            }
            _ => return Err(EINVAL),
        };
        if let Some(f) = self.pci.get_mut(vf) {
            f.vgpu = Some(want);
        }
        Ok(())
    }
}
