//! `devmig libvirt ...`: a domain's host devices, and its XML for the destination.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use devmig_api::fleet::Placement;
use devmig_core::{Device, DeviceKind, Inventory, PciAddress};
use devmig_libvirt::nodedev::{Capability, MdevTypeCap, NodeDevice, PciCap, mdev_name, pci_name};
use devmig_libvirt::{LibvirtError, hostdevs, node_xml, nodedev_xml, rewrite};

use crate::backend::Backend;
use crate::cli::{LibvirtCommand, Output};
use crate::error::CliError;
use crate::output::{json, table};

impl From<LibvirtError> for CliError {
    fn from(e: LibvirtError) -> Self {
        CliError::Usage(e.to_string())
    }
}

/// Longest domain XML read from stdin.
const MAX_XML: u64 = 16 * 1024 * 1024;

fn stdin_xml() -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_XML)
        .read_to_string(&mut text)
        .map_err(|e| CliError::Input { what: "reading the domain XML from stdin".into(), source: e })?;
    Ok(text)
}

/// Source device -> target device, from a placement a fleet answered.
fn targets(placement: &Placement) -> Result<BTreeMap<String, String>, CliError> {
    if !placement.placed {
        return Err(CliError::Usage("the placement placed nothing: there is no target to rewrite to".into()));
    }
    let mut out = BTreeMap::new();
    for a in &placement.assignments {
        // A source named by device is labelled HOST:DEVICE; one given as a string has no device.
        let Some((_, device)) = a.source.split_once(':') else { continue };
        let target = a.claimed_device.clone().unwrap_or_else(|| a.target.clone());
        out.insert(device.to_ascii_lowercase(), target);
    }
    Ok(out)
}

/// The sysfs path of a device as libvirt shows it (`/sys/devices/...`): resolved under the
/// local sysfs root, or the bus path when the tree is an agent's.
fn sys_path(root: &Path, link: &str, local: bool) -> String {
    let resolved = local.then(|| std::fs::canonicalize(root.join(link.trim_start_matches('/'))).ok()).flatten();
    match resolved.as_deref().and_then(|p| p.strip_prefix(root.canonicalize().ok()?).ok()) {
        Some(rel) => format!("/{}", rel.display()),
        None => link.to_string(),
    }
}

/// The node devices libvirt would show for `inventory`'s PCI functions and PCI-parented mdevs.
fn node_devices(inventory: &Inventory, root: &Path, local: bool) -> Vec<NodeDevice> {
    let by_id: BTreeMap<String, &Device> = inventory.devices.iter().map(|d| (d.id.to_string(), d)).collect();
    let mut groups: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for d in inventory.devices.iter().filter(|d| d.pci.is_some()) {
        if let Some(g) = d.iommu_group {
            groups.entry(g).or_default().push(d.id.to_string());
        }
    }
    let mut out = Vec::new();
    for d in &inventory.devices {
        let id = d.id.to_string();
        match d.kind {
            DeviceKind::Pci | DeviceKind::SriovPf | DeviceKind::SriovVf => {
                let Some(pci) = &d.pci else { continue };
                let (vendor, product) = pci.id.split_once(':').unwrap_or(("0", "0"));
                let path = sys_path(root, &format!("/sys/bus/pci/devices/{id}"), local);
                // The parent directory is the upstream bridge, or the root complex (`computer`).
                let up = path.rsplit('/').nth(1).unwrap_or("");
                let parent = if up.parse::<PciAddress>().is_ok() { pci_name(up) } else { "computer".into() };
                let mdev_types = d
                    .mdev_types
                    .iter()
                    .filter_map(|t| by_id.get(&format!("{id}/{t}")))
                    .map(|t| MdevTypeCap {
                        id: t
                            .mdev_type
                            .clone()
                            .unwrap_or_else(|| t.id.to_string().rsplit('/').next().unwrap_or("").to_string()),
                        name: t.name.clone(),
                        device_api: t.device_api.clone().unwrap_or_else(|| "vfio-pci".into()),
                        available: t.available_instances.unwrap_or(0),
                    })
                    .collect();
                out.push(NodeDevice {
                    name: pci_name(&id),
                    path,
                    parent,
                    driver: d.driver.clone(),
                    capability: Capability::Pci(PciCap {
                        address: id.clone(),
                        class: pci.class.clone(),
                        vendor: u16::from_str_radix(vendor, 16).unwrap_or(0),
                        product: u16::from_str_radix(product, 16).unwrap_or(0),
                        phys_function: d.physfn.clone(),
                        virt_functions: d.sriov.as_ref().map(|s| (s.total_vfs, s.vfs.clone())),
                        mdev_types,
                        iommu_group: d.iommu_group.map(|g| (g, groups.get(&g).cloned().unwrap_or_default())),
                    }),
                });
            }
            DeviceKind::Mdev => {
                // libvirt shows mdevs of PCI parents; a virtual parent (mtty) has no node device.
                let Some(parent) = d.parent.as_deref().filter(|p| by_id.get(*p).is_some_and(|p| p.pci.is_some()))
                else {
                    continue;
                };
                out.push(NodeDevice {
                    name: mdev_name(&id, parent),
                    path: sys_path(root, &format!("/sys/bus/mdev/devices/{id}"), local),
                    parent: pci_name(parent),
                    driver: Some("vfio_mdev".into()),
                    capability: Capability::Mdev {
                        mdev_type: d.mdev_type.clone().unwrap_or_default(),
                        uuid: id.clone(),
                        iommu_group: d.iommu_group,
                    },
                });
            }
            DeviceKind::MdevType => {}
        }
    }
    out
}

/// The qemu hook (see `LibvirtCommand::Hook`).
fn hook(backend: &Backend, name: &str, op: &str, subop: &str, out: &mut dyn Write) -> Result<i32, CliError> {
    if (op, subop) != ("migrate", "begin") {
        return Ok(0);
    }
    let xml = stdin_xml()?;
    let d = devmig_libvirt::domain(&xml)?;
    let Backend::Remote(agent) = backend else {
        return Err(CliError::Usage("the hook needs --agent: the claims live in this host's agent".into()));
    };
    let uuid =
        d.uuid.clone().ok_or_else(|| CliError::Usage(format!("domain {name}: the incoming XML has no <uuid>")))?;
    let prefix = format!("{uuid}.");
    let claims: Vec<devmig_api::Claim> = agent
        .claims()?
        .into_iter()
        .filter(|c| c.state == devmig_api::ClaimState::Active && c.migration_id.starts_with(&prefix))
        .collect();
    if claims.is_empty() {
        // Not a migration devmig placed: libvirt keeps the XML it has.
        out.write_all(xml.as_bytes()).map_err(CliError::Output)?;
        return Ok(0);
    }
    let mut targets = BTreeMap::new();
    for (n, h) in d.hostdevs.iter().enumerate() {
        let id = format!("{uuid}.{n}");
        let claim = claims.iter().find(|c| c.migration_id == id).ok_or_else(|| {
            CliError::Usage(format!(
                "domain {name}: hostdev #{} ({}) has no claim {id} on this host",
                h.index, h.device
            ))
        })?;
        // Step b again, now: the target still takes the source.
        let target = super::device_id(&claim.device)?;
        let report = backend.check_version(&claim.source_version, &target, false)?;
        if !report.verdict.is_compatible() {
            let why = report.reasons.iter().map(|r| r.message.clone()).collect::<Vec<_>>().join("; ");
            return Err(CliError::Remote {
                peer: "agent",
                status: 422,
                code: "target_rejected".into(),
                detail: format!("domain {name}: {target} no longer takes hostdev #{} ({}): {why}", h.index, h.device),
            });
        }
        targets.insert(h.device.clone(), claim.device.clone());
    }
    out.write_all(rewrite(&xml, &targets)?.as_bytes()).map_err(CliError::Output)?;
    Ok(0)
}

/// `devmig libvirt ...`.
pub fn libvirt(
    cmd: &LibvirtCommand,
    backend: &Backend,
    root: &Path,
    o: Output,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    match cmd {
        LibvirtCommand::Nodedev { devices, node } => {
            let local = matches!(backend, Backend::Local(_));
            let all = node_devices(&backend.inventory()?, root, local);
            let chosen: Vec<NodeDevice> = if devices.is_empty() {
                all
            } else {
                let mut picked = Vec::new();
                for want in devices {
                    let id = super::device_id(want)?.to_string();
                    let found = all.iter().find(|d| match &d.capability {
                        Capability::Pci(p) => p.address == id,
                        Capability::Mdev { uuid, .. } => *uuid == id,
                    });
                    picked.push(found.cloned().ok_or_else(|| {
                        CliError::Usage(format!(
                            "{want}: libvirt shows no node device for it (a PCI function or an mdev of a PCI parent)"
                        ))
                    })?);
                }
                picked
            };
            let text = if *node { node_xml(&chosen) } else { chosen.iter().map(nodedev_xml).collect() };
            out.write_all(text.as_bytes()).map_err(CliError::Output)?;
            Ok(0)
        }
        LibvirtCommand::Rewrite { placement } => {
            let text = CliError::read_input(placement, "placement")?;
            let placement: Placement = serde_json::from_str(&text)
                .map_err(|e| CliError::Usage(format!("placement {}: {e}", placement.display())))?;
            let xml = rewrite(&stdin_xml()?, &targets(&placement)?)?;
            out.write_all(xml.as_bytes()).map_err(CliError::Output)?;
            Ok(0)
        }
        LibvirtCommand::Hook { domain, op, subop, .. } => hook(backend, domain, op, subop, out),
        LibvirtCommand::Hostdevs => {
            let found = hostdevs(&stdin_xml()?)?;
            if o == Output::Json {
                let rows: Vec<_> = found
                    .iter()
                    .map(|h| serde_json::json!({ "index": h.index, "kind": h.kind, "device": h.device }))
                    .collect();
                json(out, "devmig.libvirt-hostdevs/v1", &serde_json::json!({ "hostdevs": rows }))?;
                return Ok(0);
            }
            let rows = found.iter().map(|h| vec![h.index.to_string(), h.kind.clone(), h.device.clone()]);
            table(out, &["HOSTDEV", "TYPE", "DEVICE"], rows)?;
            Ok(0)
        }
    }
}
