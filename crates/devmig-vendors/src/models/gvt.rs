//! Intel GVT-g vGPUs (driver i915).
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::catalog::is_type_id;
use crate::models::{
    ID_MESSAGE, driver_version, fields, model_attr, model_constraint, parse_pci_id, parse_version_field, pci_id,
    version_constraint, version_outcomes,
};
use crate::{
    AttrValue, Attributes, Catalog, Constraint, Decision, DeviceFacts, DriverVersion, Outcome, PciId, Requirement,
    VendorError, VendorModel, first_failure,
};

const NAME: &str = "i915";
const SHARES: &str = "i915.shares";

/// A parsed GVT-g version string.
///
/// Emitted form: `i915-v<gvt version>-<vendor>-<device>-<type>-<aggregator>`,
/// e.g. `i915-v1.2.0-8086-591d-i915-GVTg_V5_8-1` (the seed's `i915-v1-...`
/// example reads as GVT version 1.0.0). Also accepted: the v5 patch format
/// `"%04x-%04x-%s-%08x"` (`8086-591d-GVTg_V5_8-01020000`), whose last field
/// packs the version as `MMmmbbbb` (major, minor, bugfix) and whose
/// aggregator is 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GvtVersion {
    /// GVT software version.
    pub gvt: DriverVersion,
    /// Parent GPU vendor:device.
    pub parent: PciId,
    /// Full type id (`i915-GVTg_V5_8`).
    pub mdev_type: String,
    /// Instances aggregated into this vGPU.
    pub aggregator: u32,
}

impl GvtVersion {
    /// Parses either accepted format.
    pub fn parse(s: &str) -> Result<Self, VendorError> {
        if let Some(rest) = s.strip_prefix("i915-v") {
            let f = fields(NAME, rest, 4)?;
            let (ty, aggr) =
                f[3].rsplit_once('-').ok_or_else(|| VendorError::bad_version(NAME, s, "missing aggregator"))?;
            let aggregator = parse_aggregator(s, aggr)?;
            if !is_type_id(ty) {
                return Err(VendorError::bad_version(NAME, s, format!("{ty:?} is not a type id")));
            }
            Ok(GvtVersion {
                gvt: parse_version_field(NAME, s, f[0])?,
                parent: parse_pair(s, f[1], f[2])?,
                mdev_type: ty.to_string(),
                aggregator,
            })
        } else {
            let f: Vec<&str> = s.split('-').collect();
            let [vendor, device, ty, packed] = f.as_slice() else {
                return Err(VendorError::bad_version(NAME, s, "neither i915-v... nor vendor-device-type-version"));
            };
            if ty.is_empty()
                || ty.len() > 16
                || !is_type_id(ty)
                || packed.len() != 8
                || !packed.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(VendorError::bad_version(
                    NAME,
                    s,
                    "v5 format needs a type name of at most 16 chars and 8 hex digits",
                ));
            }
            let v = u32::from_str_radix(packed, 16).map_err(|e| VendorError::bad_version(NAME, s, e.to_string()))?;
            Ok(GvtVersion {
                gvt: DriverVersion::new(v >> 24, (v >> 16) & 0xff, v & 0xffff),
                parent: parse_pair(s, vendor, device)?,
                mdev_type: format!("i915-{ty}"),
                aggregator: 1,
            })
        }
    }

    /// The emitted (prefixed) form.
    pub fn render(&self) -> String {
        format!(
            "i915-v{}-{:04x}-{:04x}-{}-{}",
            self.gvt, self.parent.vendor, self.parent.device, self.mdev_type, self.aggregator
        )
    }
}

fn parse_pair(whole: &str, vendor: &str, device: &str) -> Result<PciId, VendorError> {
    parse_pci_id(NAME, whole, &format!("{vendor}:{device}"))
}

fn parse_aggregator(whole: &str, s: &str) -> Result<u32, VendorError> {
    match s.parse::<u32>() {
        Ok(n) if n >= 1 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(VendorError::bad_version(NAME, whole, format!("aggregator {s:?} is not a positive integer"))),
    }
}

/// A reduced fraction of one GPU, rendered `p/q`.
fn share(num: u32, den: u32) -> String {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = gcd(num, den).max(1);
    format!("{}/{}", num / g, den / g)
}

/// A parsed source and target with their types' instance counts.
struct Pair {
    s: GvtVersion,
    ns: u32,
    t: GvtVersion,
    nt: u32,
    type_node: bool,
}

impl Pair {
    fn outcomes(&self, catalog: &Catalog) -> [Outcome; 4] {
        let (s, t, ns, nt) = (&self.s, &self.t, self.ns, self.nt);
        let [major, minor] =
            version_outcomes(["i915.gvt_version_major", "i915.gvt_version_minor"], "gvt_version", s.gvt, t.gvt);
        // Native rule in integers: a_s / n_s == a_t / n_t, for the target's a_t or (type node) any a_t in 1..=n_t.
        let share_ok = if self.type_node {
            (s.aggregator * nt) % ns == 0 && (1..=nt).contains(&(s.aggregator * nt / ns))
        } else {
            s.aggregator * nt == t.aggregator * ns
        };
        [
            Outcome::new(
                "i915.parent_group",
                "parent_id",
                Catalog::reaches(&catalog.i915.parents, s.parent, t.parent),
                ID_MESSAGE,
            ),
            major,
            minor,
            Outcome::new(
                "i915.share",
                "resource_share",
                share_ok,
                "the vGPU must hold the same share of a GPU (type instances x aggregator)",
            ),
        ]
    }

    fn values(&self, o: &Outcome) -> (String, String) {
        let (s, t) = (&self.s, &self.t);
        match o.field {
            "parent_id" => (s.parent.to_string(), t.parent.to_string()),
            "gvt_version" => (s.gvt.to_string(), t.gvt.to_string()),
            _ => {
                let source = format!("{} x{} = {}", s.mdev_type, s.aggregator, share(s.aggregator, self.ns));
                let target = if self.type_node {
                    let all: Vec<String> = (1..=self.nt).map(|k| share(k, self.nt)).collect();
                    format!("{} x1..{} = {}", t.mdev_type, self.nt, all.join(","))
                } else {
                    format!("{} x{} = {}", t.mdev_type, t.aggregator, share(t.aggregator, self.nt))
                };
                (source, target)
            }
        }
    }
}

/// The GVT-g model.
#[derive(Debug)]
pub struct GvtModel {
    catalog: Arc<Catalog>,
}

impl GvtModel {
    /// A model reading `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        GvtModel { catalog }
    }

    fn instances(&self, ty: &str) -> Option<u32> {
        self.catalog.gvt_type(ty).map(|t| t.instances)
    }

    /// The target's own version fields.
    fn target(&self, dev: &DeviceFacts) -> Result<GvtVersion, VendorError> {
        if !dev.is_mdev_like() {
            return Err(VendorError::unsupported(NAME, "GVT-g migrates mdevs and mdev types only"));
        }
        let ty = dev.mdev_type.as_deref().ok_or_else(|| VendorError::unsupported(NAME, "no mdev type"))?;
        let n = self
            .instances(ty)
            .ok_or_else(|| VendorError::unsupported(NAME, format!("type {ty:?} is not in the catalog")))?;
        if dev.aggregator == 0 || dev.aggregator > n {
            return Err(VendorError::unsupported(
                NAME,
                format!("aggregator {} outside 1..={n} for {ty}", dev.aggregator),
            ));
        }
        Ok(GvtVersion {
            gvt: driver_version(NAME, dev)?,
            parent: pci_id(NAME, dev)?,
            mdev_type: ty.to_string(),
            aggregator: dev.aggregator,
        })
    }

    /// The source's fields, with its type's instance count.
    fn source(&self, s: &str) -> Result<(GvtVersion, u32), VendorError> {
        let v = GvtVersion::parse(s)?;
        let n = self.instances(&v.mdev_type).ok_or_else(|| {
            VendorError::bad_version(NAME, s, format!("type {:?} is not in the catalog", v.mdev_type))
        })?;
        if v.aggregator > n {
            return Err(VendorError::bad_version(
                NAME,
                s,
                format!("aggregator {} exceeds the {n} instances of {}", v.aggregator, v.mdev_type),
            ));
        }
        Ok((v, n))
    }

    fn pair(&self, source: &str, target: &DeviceFacts) -> Result<Pair, VendorError> {
        let (s, ns) = self.source(source)?;
        let t = self.target(target)?;
        let nt = self.instances(&t.mdev_type).unwrap_or(1);
        Ok(Pair { s, ns, t, nt, type_node: matches!(target.kind, crate::FactsKind::MdevType) })
    }

    /// Shares of a GPU the target can hold: its own for an mdev; any
    /// aggregation of the type for a type node.
    fn target_shares(dev: &DeviceFacts, t: &GvtVersion, n: u32) -> BTreeSet<String> {
        match dev.kind {
            crate::FactsKind::MdevType => (1..=n).map(|k| share(k, n)).collect(),
            _ => [share(t.aggregator, n)].into(),
        }
    }
}

impl VendorModel for GvtModel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn recognizes(&self, dev: &DeviceFacts) -> bool {
        dev.is_mdev_like()
            && dev.driver.as_deref() == Some(NAME)
            && dev.mdev_type.as_deref().is_some_and(|t| t.starts_with("i915-GVTg"))
    }

    fn claims_version(&self, version: &str) -> bool {
        version.starts_with("i915-") || (version.split('-').count() == 4 && GvtVersion::parse(version).is_ok())
    }

    fn version(&self, dev: &DeviceFacts) -> Result<String, VendorError> {
        Ok(self.target(dev)?.render())
    }

    fn evaluate(&self, source: &str, target: &DeviceFacts) -> Result<Decision, VendorError> {
        let p = self.pair(source, target)?;
        Ok(Decision::from_outcomes(NAME, &p.outcomes(&self.catalog), |o| p.values(o)))
    }

    fn decide(&self, source: &str, target: &DeviceFacts) -> Result<Option<&'static str>, VendorError> {
        Ok(first_failure(&self.pair(source, target)?.outcomes(&self.catalog)))
    }

    fn dynamic_resources(&self, source: &str, target: &DeviceFacts) -> Result<Vec<(String, String)>, VendorError> {
        let (s, ns) = self.source(source)?;
        let t = self.target(target)?;
        let nt = self.instances(&t.mdev_type).unwrap_or(1);
        // The same share of a GPU: a_t = a_s * n_t / n_s, when that is a whole number of instances.
        if (s.aggregator * nt) % ns != 0 || s.aggregator * nt / ns == 0 {
            return Err(VendorError::unsupported(
                NAME,
                format!("{} cannot hold {}/{} of a GPU", t.mdev_type, s.aggregator, ns),
            ));
        }
        Ok(vec![("aggregator".to_string(), (s.aggregator * nt / ns).to_string())])
    }

    fn attributes(&self, dev: &DeviceFacts) -> Result<Attributes, VendorError> {
        let t = self.target(dev)?;
        let n = self.instances(&t.mdev_type).unwrap_or(1);
        Ok(Attributes::from([
            model_attr(NAME),
            ("i915.parent_id".to_string(), AttrValue::String(t.parent.to_string())),
            ("i915.gvt_version".to_string(), AttrValue::Semver(t.gvt)),
            (SHARES.to_string(), AttrValue::Set(Self::target_shares(dev, &t, n))),
        ]))
    }

    fn facts_from_version(&self, version: &str, base: &DeviceFacts) -> Result<DeviceFacts, VendorError> {
        let v = GvtVersion::parse(version)?;
        Ok(DeviceFacts {
            driver_version: Some(v.gvt.to_string()),
            pci_id: Some(v.parent),
            mdev_type: Some(v.mdev_type),
            aggregator: v.aggregator,
            ..base.clone()
        })
    }

    fn one_of_groups(&self, attr: &str) -> Vec<std::collections::BTreeSet<String>> {
        if attr == "i915.parent_id" { Catalog::id_groups(&self.catalog.i915.parents) } else { Vec::new() }
    }

    fn requirement(&self, source: &str) -> Result<Requirement, VendorError> {
        let (s, ns) = self.source(source)?;
        let allowed = Catalog::targets_of(&self.catalog.i915.parents, s.parent);
        Ok(Requirement {
            all: vec![
                model_constraint(NAME),
                Constraint::OneOf {
                    attr: "i915.parent_id".to_string(),
                    values: allowed.iter().map(PciId::to_string).collect(),
                },
                version_constraint("i915.gvt_version", s.gvt),
                Constraint::Contains { attr: SHARES.to_string(), value: share(s.aggregator, ns) },
            ],
        })
    }
}
