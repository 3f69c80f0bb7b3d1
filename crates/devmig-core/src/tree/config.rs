//! A PCI function's configuration space as `config` shows it: the type 0 header, a capability
//! list (power management, MSI-X, PCI Express) and, for PCI Express functions, the extended
//! space with an SR-IOV capability on a PF. Register layouts from the PCI and PCIe base
//! specifications as Linux names them (include/uapi/linux/pci_regs.h).

/// Offsets and values a running emulation changes after the space is built.
pub mod reg {
    /// Command register (16 bits).
    pub const COMMAND: usize = 0x04;
    /// Command: memory space decoding.
    pub const COMMAND_MEMORY: u16 = 0x0002;
    /// Command: bus mastering.
    pub const COMMAND_MASTER: u16 = 0x0004;
    /// Where the SR-IOV extended capability sits.
    pub const SRIOV: usize = 0x100;
    /// SR-IOV control (16 bits): VF Enable is bit 0, VF Memory Space Enable bit 3.
    pub const SRIOV_CTRL: usize = SRIOV + 0x08;
    /// SR-IOV NumVFs (16 bits).
    pub const SRIOV_NUM_VF: usize = SRIOV + 0x10;
    /// The MSI-X capability's message control (16 bits): Enable is bit 15.
    pub const MSIX_FLAGS: usize = 0x52;
}

/// The SR-IOV capability of a PF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SriovCap {
    /// TotalVFs.
    pub total: u16,
    /// NumVFs (VFs enabled).
    pub num: u16,
    /// First VF offset, in routing ids from the PF.
    pub offset: u16,
    /// VF stride.
    pub stride: u16,
    /// VF device id.
    pub vf_device: u16,
}

/// What the space shows of one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigSpec {
    /// Vendor and device ids (a VF's read as 0xffff: its ids live in the PF's SR-IOV capability).
    pub ids: (u16, u16),
    /// Subsystem vendor and device.
    pub subsystem: (u16, u16),
    /// Class code and revision.
    pub class: u32,
    /// Revision.
    pub revision: u8,
    /// Whether this is a VF.
    pub is_vf: bool,
    /// Whether a driver is bound (memory decoding and bus mastering on, MSI-X enabled).
    pub bound: bool,
    /// PCI Express link (generation 1-6, width); None for conventional PCI (256 bytes).
    pub link: Option<(u8, u8)>,
    /// The SR-IOV capability of a PF.
    pub sriov: Option<SriovCap>,
}

fn put16(c: &mut [u8], at: usize, v: u16) {
    c[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(c: &mut [u8], at: usize, v: u32) {
    c[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Builds the space: 256 bytes for conventional PCI, 4096 for PCI Express.
pub fn config_space(s: &ConfigSpec) -> Vec<u8> {
    let mut c = vec![0u8; if s.link.is_some() { 4096 } else { 256 }];
    let (vendor, device) = if s.is_vf { (0xffff, 0xffff) } else { s.ids };
    put16(&mut c, 0x00, vendor);
    put16(&mut c, 0x02, device);
    if s.bound {
        put16(&mut c, reg::COMMAND, reg::COMMAND_MEMORY | reg::COMMAND_MASTER);
    }
    put16(&mut c, 0x06, 0x0010); // status: capability list
    c[0x08] = s.revision;
    c[0x09..0x0c].copy_from_slice(&s.class.to_le_bytes()[..3]);
    put16(&mut c, 0x2c, s.subsystem.0);
    put16(&mut c, 0x2e, s.subsystem.1);
    c[0x34] = 0x40; // first capability
    c[0x3d] = if s.is_vf { 0 } else { 1 }; // interrupt pin INTA (VFs have none)
    // 0x40: power management, version 3; D0, no soft reset on D3hot->D0.
    c[0x40] = 0x01;
    c[0x41] = 0x50;
    put16(&mut c, 0x42, 0x0003);
    put16(&mut c, 0x44, 0x0008);
    // 0x50: MSI-X, 16 vectors, table at BAR0 + 0x2000, pending bits at BAR0 + 0x3000.
    c[0x50] = 0x11;
    c[0x51] = if s.link.is_some() { 0x60 } else { 0 };
    put16(&mut c, reg::MSIX_FLAGS, 0x000f | if s.bound { 0x8000 } else { 0 });
    put32(&mut c, 0x54, 0x2000);
    put32(&mut c, 0x58, 0x3000);
    if let Some((generation, width)) = s.link {
        // 0x60: PCI Express capability, version 2, an endpoint.
        c[0x60] = 0x10;
        put16(&mut c, 0x62, 0x0002);
        put32(&mut c, 0x64, 0x1000_0001); // DevCap: MaxPayload 256, FLR
        put16(&mut c, 0x68, 0x2810); // DevCtl: MaxPayload 128, MaxReadReq 512, RlxdOrd, NoSnoop
        let link = u32::from(generation) | (u32::from(width) << 4);
        put32(&mut c, 0x6c, link); // LinkCap: max speed and width
        put16(&mut c, 0x72, u16::try_from(link).unwrap_or(0)); // LinkSta: trained at both
        put32(&mut c, 0x8c, ((1u32 << generation) - 1) << 1); // LinkCap2: every speed up to gen
        put16(&mut c, 0x90, u16::from(generation)); // LinkCtl2: target speed
        if let Some(v) = s.sriov {
            put32(&mut c, reg::SRIOV, 0x0001_0010); // SR-IOV, version 1, last capability
            let enabled = if v.num > 0 { 0x0009 } else { 0 };
            put16(&mut c, reg::SRIOV_CTRL, enabled);
            put16(&mut c, reg::SRIOV + 0x0c, v.total); // InitialVFs
            put16(&mut c, reg::SRIOV + 0x0e, v.total);
            put16(&mut c, reg::SRIOV_NUM_VF, v.num);
            put16(&mut c, reg::SRIOV + 0x14, v.offset);
            put16(&mut c, reg::SRIOV + 0x16, v.stride);
            put16(&mut c, reg::SRIOV + 0x1a, v.vf_device);
            put32(&mut c, reg::SRIOV + 0x1c, 0x0553); // supported page sizes
            put32(&mut c, reg::SRIOV + 0x20, 0x0001); // system page size 4 KiB
        }
    }
    c
}

/// The kernel's names of a link speed (`current_link_speed`), by generation.
pub fn link_speed_text(generation: u8) -> &'static str {
    match generation {
        1 => "2.5 GT/s PCIe",
        2 => "5.0 GT/s PCIe",
        3 => "8.0 GT/s PCIe",
        4 => "16.0 GT/s PCIe",
        5 => "32.0 GT/s PCIe",
        6 => "64.0 GT/s PCIe",
        _ => "Unknown",
    }
}

/// A CPU list ("0-3,8") as the hex mask `local_cpus` shows (32-bit groups, comma separated).
pub fn cpu_mask(list: &[u32]) -> String {
    let words = list.iter().map(|c| c / 32 + 1).max().unwrap_or(1) as usize;
    let mut w = vec![0u32; words];
    for c in list {
        w[(c / 32) as usize] |= 1 << (c % 32);
    }
    let mut out: Vec<String> = w.iter().rev().map(|x| format!("{x:08x}")).collect();
    if let Some(first) = out.first_mut() {
        *first = first.trim_start_matches('0').to_string();
        if first.is_empty() {
            "0".clone_into(first);
        }
    }
    out.join(",")
}

/// A CPU list in the kernel's range form ("0-3,8").
pub fn cpu_list(list: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let start = list[i];
        let mut end = start;
        while i + 1 < list.len() && list[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_sets_render_as_the_kernel_does() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 8]), "0-3,8");
        assert_eq!(cpu_mask(&[0, 1]), "3");
        assert_eq!(cpu_mask(&[0, 33]), "2,00000001");
        assert_eq!(cpu_mask(&[]), "0");
    }

    #[test]
    fn a_pf_shows_its_sriov_capability_in_the_extended_space() {
        let s = ConfigSpec {
            ids: (0x144d, 0xa824),
            subsystem: (0x144d, 0xa801),
            class: 0x010802,
            revision: 0,
            is_vf: false,
            bound: true,
            link: Some((3, 4)),
            sriov: Some(SriovCap { total: 8, num: 2, offset: 1, stride: 1, vf_device: 0xa824 }),
        };
        let c = config_space(&s);
        assert_eq!(c.len(), 4096);
        assert_eq!(&c[0..4], &[0x4d, 0x14, 0x24, 0xa8]);
        assert_eq!(u16::from_le_bytes([c[reg::SRIOV_NUM_VF], c[reg::SRIOV_NUM_VF + 1]]), 2);
        assert_eq!(c[0x6c] & 0x0f, 3, "gen 3 link");
        let vf = config_space(&ConfigSpec { is_vf: true, sriov: None, ..s });
        assert_eq!(&vf[0..4], &[0xff; 4]);
        assert_eq!(config_space(&ConfigSpec { link: None, ..s }).len(), 256);
    }
}
