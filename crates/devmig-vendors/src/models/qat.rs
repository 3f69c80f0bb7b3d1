//! Intel QAT VFs and QAT SIOV mdevs (the seed's hybrid case).
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::models::{
    driver_version, fields, model_attr, model_constraint, parse_pci_id, parse_version_field, pci_id,
    version_constraint, version_outcomes,
};
use crate::{
    AttrValue, Attributes, Catalog, Constraint, Decision, DeviceFacts, DriverVersion, Outcome, PciId, Requirement,
    VendorError, VendorModel, first_failure,
};

const NAME: &str = "qat";
/// Per-device configuration file the model reads: supported algorithms, separated by spaces or commas.
pub const CRYPTO_PARAM: &str = "crypto_algorithms";

/// A parsed QAT version: `qat-v1-<family>-<vendor:device>-<driver version>-<alg,alg,...>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QatVersion {
    /// Catalog family (`qat4xxx_vf`).
    pub family: String,
    /// The VF's id, or the SIOV parent's.
    pub id: PciId,
    /// QAT driver version.
    pub driver: DriverVersion,
    /// Supported algorithms.
    pub crypto: BTreeSet<String>,
}

fn is_alg(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 64
        && a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// Parses a configured algorithm list (spaces or commas, any case).
pub fn parse_crypto(list: &str) -> Result<BTreeSet<String>, VendorError> {
    let set: BTreeSet<String> =
        list.split([' ', ',', '\n', '\t']).filter(|a| !a.is_empty()).map(str::to_ascii_lowercase).collect();
    match set.iter().find(|a| !is_alg(a)) {
        Some(bad) => Err(VendorError::bad_value("crypto algorithms", format!("{bad:?} must match [a-z0-9_.-]+"))),
        None => Ok(set),
    }
}

impl QatVersion {
    /// Parses the emitted form.
    pub fn parse(s: &str) -> Result<Self, VendorError> {
        let rest =
            s.strip_prefix("qat-v1-").ok_or_else(|| VendorError::bad_version(NAME, s, "expected prefix qat-v1-"))?;
        let f = fields(NAME, rest, 4)?;
        let crypto: BTreeSet<String> = f[3].split(',').map(str::to_string).collect();
        if crypto.iter().any(|a| !is_alg(a)) {
            return Err(VendorError::bad_version(NAME, s, "algorithms must be comma-separated [a-z0-9_.-]+"));
        }
        Ok(QatVersion {
            family: f[0].to_string(),
            id: parse_pci_id(NAME, s, f[1])?,
            driver: parse_version_field(NAME, s, f[2])?,
            crypto,
        })
    }

    /// The emitted form.
    pub fn render(&self) -> String {
        let algs: Vec<&str> = self.crypto.iter().map(String::as_str).collect();
        format!("qat-v1-{}-{}-{}-{}", self.family, self.id, self.driver, algs.join(","))
    }
}

/// The QAT model.
#[derive(Debug)]
pub struct QatModel {
    catalog: Arc<Catalog>,
}

impl QatModel {
    /// A model reading `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        QatModel { catalog }
    }

    fn family(&self, dev: &DeviceFacts) -> Option<&str> {
        let id = dev.pci_id?;
        let family = if dev.is_vf() {
            self.catalog.qat_family_of_vf(id)
        } else if dev.is_mdev_like() {
            self.catalog.qat_family_of_mdev(id, dev.mdev_type.as_deref()?)
        } else {
            None
        };
        family.map(|f| f.name.as_str())
    }

    fn target(&self, dev: &DeviceFacts) -> Result<QatVersion, VendorError> {
        let family = self
            .family(dev)
            .ok_or_else(|| VendorError::unsupported(NAME, "not a VF or mdev type of a catalogued QAT family"))?;
        let list = dev
            .params
            .get(CRYPTO_PARAM)
            .ok_or_else(|| VendorError::unsupported(NAME, format!("no {CRYPTO_PARAM} configured")))?;
        let crypto = parse_crypto(list).map_err(|e| VendorError::unsupported(NAME, e))?;
        if crypto.is_empty() {
            return Err(VendorError::unsupported(NAME, "no algorithms configured"));
        }
        Ok(QatVersion {
            family: family.to_string(),
            id: pci_id(NAME, dev)?,
            driver: driver_version(NAME, dev)?,
            crypto,
        })
    }

    fn source(&self, s: &str) -> Result<QatVersion, VendorError> {
        let v = QatVersion::parse(s)?;
        if !self.catalog.qat.families.iter().any(|f| f.name == v.family) {
            return Err(VendorError::bad_version(NAME, s, format!("family {:?} is not in the catalog", v.family)));
        }
        Ok(v)
    }
}

impl QatModel {
    fn outcomes(&self, s: &QatVersion, t: &QatVersion) -> [Outcome; 4] {
        let [major, minor] = version_outcomes(
            ["qat.driver_version_major", "qat.driver_version_minor"],
            "driver_version",
            s.driver,
            t.driver,
        );
        [
            Outcome::new(
                "qat.family",
                "family",
                self.catalog.qat_reaches(&s.family, &t.family),
                "the target's family must be one the source's family migrates to",
            ),
            major,
            minor,
            Outcome::new(
                "qat.crypto_superset",
                "crypto_algorithms",
                t.crypto.is_superset(&s.crypto),
                "the target must support every source algorithm",
            ),
        ]
    }
}

impl VendorModel for QatModel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn recognizes(&self, dev: &DeviceFacts) -> bool {
        self.family(dev).is_some()
    }

    fn claims_version(&self, version: &str) -> bool {
        version.starts_with("qat-")
    }

    fn version(&self, dev: &DeviceFacts) -> Result<String, VendorError> {
        Ok(self.target(dev)?.render())
    }

    fn evaluate(&self, source: &str, target: &DeviceFacts) -> Result<Decision, VendorError> {
        let (s, t) = (self.source(source)?, self.target(target)?);
        let join = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(",");
        Ok(Decision::from_outcomes(NAME, &self.outcomes(&s, &t), |o| match o.field {
            "family" => (s.family.clone(), t.family.clone()),
            "driver_version" => (s.driver.to_string(), t.driver.to_string()),
            _ => {
                let missing: BTreeSet<String> = s.crypto.difference(&t.crypto).cloned().collect();
                let lacks = if missing.is_empty() { String::new() } else { format!(" (lacks {})", join(&missing)) };
                (join(&s.crypto), format!("{}{lacks}", join(&t.crypto)))
            }
        }))
    }

    fn decide(&self, source: &str, target: &DeviceFacts) -> Result<Option<&'static str>, VendorError> {
        Ok(first_failure(&self.outcomes(&self.source(source)?, &self.target(target)?)))
    }

    fn attributes(&self, dev: &DeviceFacts) -> Result<Attributes, VendorError> {
        let t = self.target(dev)?;
        Ok(Attributes::from([
            model_attr(NAME),
            ("qat.family".to_string(), AttrValue::String(t.family)),
            ("qat.driver_version".to_string(), AttrValue::Semver(t.driver)),
            ("qat.crypto".to_string(), AttrValue::Set(t.crypto)),
        ]))
    }

    fn facts_from_version(&self, version: &str, base: &DeviceFacts) -> Result<DeviceFacts, VendorError> {
        let v = self.source(version)?;
        let mut facts = DeviceFacts { driver_version: Some(v.driver.to_string()), pci_id: Some(v.id), ..base.clone() };
        let algs: Vec<&str> = v.crypto.iter().map(String::as_str).collect();
        facts.params.insert(CRYPTO_PARAM.to_string(), algs.join(" "));
        Ok(facts)
    }

    fn one_of_groups(&self, attr: &str) -> Vec<std::collections::BTreeSet<String>> {
        if attr == "qat.family" { self.catalog.qat_groups() } else { Vec::new() }
    }

    fn requirement(&self, source: &str) -> Result<Requirement, VendorError> {
        let s = self.source(source)?;
        Ok(Requirement {
            all: vec![
                model_constraint(NAME),
                Constraint::OneOf { attr: "qat.family".to_string(), values: self.catalog.qat_targets(&s.family) },
                version_constraint("qat.driver_version", s.driver),
                Constraint::Superset { attr: "qat.crypto".to_string(), values: s.crypto },
            ],
        })
    }

    fn param_files(&self, _dev: &DeviceFacts) -> Vec<String> {
        vec![CRYPTO_PARAM.to_string()]
    }
}
