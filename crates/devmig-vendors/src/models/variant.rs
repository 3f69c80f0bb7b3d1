//! VFs bound to one of the kernel's VFIO migration variant drivers (`mlx5_vfio_pci`,
//! `qat_vfio_pci`, `pds_vfio_pci`, `hisi_acc_vfio_pci`, `virtio_vfio_pci`). Those drivers show
//! no `migration_version`: the destination's resume (the kernel's header checks, then the
//! device's firmware) is where an incompatible pair fails today, after the memory copy. devmig
//! answers before, as the userspace adapter, from what the host shows: the driver, the VF's id
//! and the host facts each driver's catalog row lists (firmware version, board id, configured
//! services). What no host file shows is named in the decision's `at_resume`, never guessed: the
//! rules only exclude pairs the driver or its vendor documents as failing, so step a stays sound.
//!
//! The QAT row is today's kernel for the devices the `qat` model covers as the seed proposes
//! them: `qat_vfio_pci` compares the capability mask (the `qat` model's algorithm superset) and
//! the ring-to-service map (here: the PF's configured services) when the destination resumes.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::models::{model_attr, model_constraint, parse_pci_id, pci_id};
use crate::{
    AttrValue, Attributes, Catalog, Constraint, Decision, DeviceFacts, FactRule, Outcome, PciId, Requirement,
    VariantDriver, VendorError, VendorModel, first_failure,
};

const NAME: &str = "vfio_variant";
const PREFIX: &str = "vfio_variant-v1-";
const DRIVER: &str = "vfio_variant.driver";
const ID: &str = "vfio_variant.id";
/// Bytes a fact value keeps as they are in a version string (`-` and `=` separate fields).
const VALUE: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'.').remove(b'_').remove(b':').remove(b';').remove(b',').remove(b'+').remove(b'/');

/// A parsed variant-driver version:
/// `vfio_variant-v1-<driver>-<vendor:device>[-<fact>=<percent-encoded value>]...`
/// (`vfio_variant-v1-mlx5_vfio_pci-15b3:101e-fw_version=28.41.1000-psid=MT_0000000838`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantVersion {
    /// The variant driver bound to the VF.
    pub driver: String,
    /// The VF's vendor:device.
    pub id: PciId,
    /// The catalog row's facts, by name.
    pub facts: BTreeMap<String, String>,
}

impl VariantVersion {
    /// Parses the emitted form.
    pub fn parse(s: &str) -> Result<Self, VendorError> {
        let rest = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| VendorError::bad_version(NAME, s, format!("expected prefix {PREFIX}")))?;
        let mut parts = rest.split('-');
        let driver = parts.next().filter(|d| crate::variant_catalog::is_snake_name(d));
        let driver = driver.ok_or_else(|| VendorError::bad_version(NAME, s, "the driver name must be [a-z0-9_]+"))?;
        let id = parse_pci_id(NAME, s, parts.next().unwrap_or_default())?;
        let mut facts = BTreeMap::new();
        for part in parts {
            let (name, value) = part
                .split_once('=')
                .filter(|(n, _)| crate::variant_catalog::is_snake_name(n))
                .ok_or_else(|| VendorError::bad_version(NAME, s, format!("{part:?} is not <fact>=<value>")))?;
            let value = percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| VendorError::bad_version(NAME, s, format!("fact {name}: not UTF-8 once decoded")))?;
            if facts.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(VendorError::bad_version(NAME, s, format!("fact {name} is given twice")));
            }
        }
        Ok(VariantVersion { driver: driver.to_string(), id, facts })
    }

    /// The emitted form.
    pub fn render(&self) -> String {
        let mut out = format!("{PREFIX}{}-{}", self.driver, self.id);
        for (name, value) in &self.facts {
            out.push_str(&format!("-{name}={}", utf8_percent_encode(value, VALUE)));
        }
        out
    }
}

/// `s` as a `&'static str`, stored once per distinct text: rule codes and messages come from
/// the catalog, and a decision names them for the life of the process.
fn intern(s: &str) -> &'static str {
    static TABLE: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut table = TABLE.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    match table.get(s) {
        Some(found) => found,
        None => {
            let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
            table.insert(leaked);
            leaked
        }
    }
}

/// The tokens of a set-valued fact (`sym;asym`, `a, b`).
fn tokens(value: &str) -> BTreeSet<String> {
    value.split([';', ',', ' ', '\t', '\n']).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

/// Whether a source value and a target value satisfy `rule`.
fn relates(rule: FactRule, source: &str, target: &str) -> bool {
    match rule {
        FactRule::Equal => source == target,
        FactRule::SameSet => tokens(source) == tokens(target),
        FactRule::Superset => tokens(target).is_superset(&tokens(source)),
    }
}

/// One fact rule's texts, interned when the model is built: (rule code, field, message).
type FactTexts = (&'static str, &'static str, &'static str);

/// The model of the kernel's VFIO migration variant drivers, one catalog row per driver.
#[derive(Debug)]
pub struct VariantModel {
    catalog: Arc<Catalog>,
    /// Per driver row, in the row's order: its facts' texts (no lock on the check path).
    texts: BTreeMap<String, Vec<FactTexts>>,
}

impl VariantModel {
    /// A model reading `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        let texts = catalog
            .variant
            .drivers
            .iter()
            .map(|d| {
                let facts = d
                    .facts
                    .iter()
                    .map(|f| (intern(&format!("{NAME}.{}", f.name)), intern(&f.name), intern(&f.why)))
                    .collect();
                (d.name.clone(), facts)
            })
            .collect();
        VariantModel { catalog, texts }
    }

    fn row(&self, dev: &DeviceFacts) -> Option<&VariantDriver> {
        let row = self.catalog.variant.driver(dev.driver.as_deref()?)?;
        (dev.is_vf() && dev.pci_id.is_some_and(|id| row.ids.contains(&id))).then_some(row)
    }

    fn target(&self, dev: &DeviceFacts) -> Result<(&VariantDriver, VariantVersion), VendorError> {
        let row = self.row(dev).ok_or_else(|| {
            VendorError::unsupported(NAME, "not a VF of a catalogued variant driver's id table, bound to it")
        })?;
        for r in &row.requires {
            let value = dev.params.get(&r.file).map(|v| v.trim()).unwrap_or("");
            if !r.met_by(value) {
                let shown = if value.is_empty() { "nothing".to_string() } else { format!("{value:?}") };
                return Err(VendorError::unsupported(
                    NAME,
                    format!("{}: {} shows {shown}: {}", row.name, r.file, r.why),
                ));
            }
        }
        let mut facts = BTreeMap::new();
        for f in &row.facts {
            let value = dev.params.get(&f.file).map(|v| v.trim()).filter(|v| !v.is_empty()).ok_or_else(|| {
                VendorError::unsupported(
                    NAME,
                    format!("{}: {} shows no {} (needed to decide)", row.name, f.file, f.name),
                )
            })?;
            facts.insert(f.name.clone(), value.to_string());
        }
        Ok((row, VariantVersion { driver: row.name.clone(), id: pci_id(NAME, dev)?, facts }))
    }

    /// A source string whose driver is catalogued and whose facts are exactly its row's.
    fn source(&self, s: &str) -> Result<(&VariantDriver, VariantVersion), VendorError> {
        let v = VariantVersion::parse(s)?;
        let row =
            self.catalog.variant.driver(&v.driver).ok_or_else(|| {
                VendorError::bad_version(NAME, s, format!("driver {:?} is not in the catalog", v.driver))
            })?;
        let wanted: BTreeSet<&str> = row.facts.iter().map(|f| f.name.as_str()).collect();
        let given: BTreeSet<&str> = v.facts.keys().map(String::as_str).collect();
        if wanted != given {
            let want: Vec<&str> = wanted.into_iter().collect();
            return Err(VendorError::bad_version(NAME, s, format!("{} needs facts [{}]", row.name, want.join(","))));
        }
        Ok((row, v))
    }

    fn outcomes(&self, s: &VariantVersion, t_row: &VariantDriver, t: &VariantVersion) -> Vec<Outcome> {
        let mut out = vec![
            Outcome::new(DRIVER, "driver", s.driver == t.driver, "the target VF must be bound to the source's driver"),
            Outcome::new(
                ID,
                "id",
                Catalog::reaches(&t_row.migrations, s.id, t.id),
                "the target VF's id must be the source's (or one the catalog lets it migrate to)",
            ),
        ];
        let texts = self.texts.get(&t_row.name).map_or(&[][..], Vec::as_slice);
        for (f, (rule, field, why)) in t_row.facts.iter().zip(texts) {
            let passed = match (s.facts.get(&f.name), t.facts.get(&f.name)) {
                (Some(a), Some(b)) => relates(f.rule, a, b),
                _ => false,
            };
            out.push(Outcome::new(rule, field, passed, why));
        }
        out
    }
}

impl VendorModel for VariantModel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn recognizes(&self, dev: &DeviceFacts) -> bool {
        self.row(dev).is_some()
    }

    fn claims_version(&self, version: &str) -> bool {
        version.starts_with("vfio_variant-")
    }

    fn version(&self, dev: &DeviceFacts) -> Result<String, VendorError> {
        Ok(self.target(dev)?.1.render())
    }

    fn evaluate(&self, source: &str, target: &DeviceFacts) -> Result<Decision, VendorError> {
        let ((_, s), (row, t)) = (self.source(source)?, self.target(target)?);
        let mut d = Decision::from_outcomes(NAME, &self.outcomes(&s, row, &t), |o| match o.rule {
            DRIVER => (s.driver.clone(), format!("{} ({})", t.driver, row.title)),
            ID => (s.id.to_string(), t.id.to_string()),
            _ => {
                let value = |v: &VariantVersion| v.facts.get(o.field).cloned().unwrap_or_else(|| "(none)".into());
                (value(&s), value(&t))
            }
        });
        d.at_resume = row.at_resume.iter().map(|r| r.what.clone()).collect();
        Ok(d)
    }

    fn decide(&self, source: &str, target: &DeviceFacts) -> Result<Option<&'static str>, VendorError> {
        let ((_, s), (row, t)) = (self.source(source)?, self.target(target)?);
        Ok(first_failure(&self.outcomes(&s, row, &t)))
    }

    fn attributes(&self, dev: &DeviceFacts) -> Result<Attributes, VendorError> {
        let (row, t) = self.target(dev)?;
        let mut attrs = Attributes::from([
            model_attr(NAME),
            (DRIVER.to_string(), AttrValue::String(t.driver.clone())),
            (ID.to_string(), AttrValue::String(t.id.to_string())),
        ]);
        for f in &row.facts {
            let value = &t.facts[&f.name];
            let typed = match f.rule {
                FactRule::Equal => AttrValue::String(value.clone()),
                FactRule::SameSet | FactRule::Superset => AttrValue::Set(tokens(value)),
            };
            attrs.insert(format!("{NAME}.{}", f.name), typed);
        }
        Ok(attrs)
    }

    fn requirement(&self, source: &str) -> Result<Requirement, VendorError> {
        let (row, s) = self.source(source)?;
        let mut all = vec![
            model_constraint(NAME),
            Constraint::Equals { attr: DRIVER.to_string(), value: AttrValue::String(s.driver.clone()) },
            Constraint::OneOf {
                attr: ID.to_string(),
                values: Catalog::targets_of(&row.migrations, s.id).iter().map(PciId::to_string).collect(),
            },
        ];
        for f in &row.facts {
            let (attr, value) = (format!("{NAME}.{}", f.name), &s.facts[&f.name]);
            all.push(match f.rule {
                FactRule::Equal => Constraint::Equals { attr, value: AttrValue::String(value.clone()) },
                FactRule::SameSet => Constraint::Equals { attr, value: AttrValue::Set(tokens(value)) },
                FactRule::Superset => Constraint::Superset { attr, values: tokens(value) },
            });
        }
        Ok(Requirement { all })
    }

    fn facts_from_version(&self, version: &str, base: &DeviceFacts) -> Result<DeviceFacts, VendorError> {
        let (row, v) = self.source(version)?;
        let mut facts = DeviceFacts { pci_id: Some(v.id), ..base.clone() };
        for f in &row.facts {
            facts.params.insert(f.file.clone(), v.facts[&f.name].clone());
        }
        Ok(facts)
    }

    fn one_of_groups(&self, attr: &str) -> Vec<BTreeSet<String>> {
        if attr == ID { self.catalog.variant.id_groups() } else { Vec::new() }
    }

    fn param_files(&self, dev: &DeviceFacts) -> Vec<String> {
        let Some(row) = self.row(dev) else { return Vec::new() };
        row.facts.iter().map(|f| &f.file).chain(row.requires.iter().map(|r| &r.file)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_bad_ones_name_the_part() {
        let s = "vfio_variant-v1-qat_vfio_pci-8086:4941-services=asym%3Bsym";
        let v = VariantVersion::parse(s).expect("parses");
        assert_eq!(v.facts["services"], "asym;sym");
        assert_eq!(v.render(), "vfio_variant-v1-qat_vfio_pci-8086:4941-services=asym;sym");
        let odd = VariantVersion { facts: BTreeMap::from([("fw".into(), "a-b=c %".into())]), ..v };
        assert_eq!(VariantVersion::parse(&odd.render()).expect("round trip"), odd);
        let e = VariantVersion::parse("vfio_variant-v2-mlx5_vfio_pci-15b3:101e").expect_err("v2").to_string();
        assert!(e.contains("expected prefix vfio_variant-v1-"), "{e}");
        for bad in [
            "vfio_variant-v1-Mlx5-15b3:101e",
            "vfio_variant-v1-mlx5_vfio_pci-15b3",
            "vfio_variant-v1-mlx5_vfio_pci-15b3:101e-fw",
            "vfio_variant-v1-mlx5_vfio_pci-15b3:101e-fw=1-fw=2",
        ] {
            assert!(VariantVersion::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_vf_whose_pf_lacks_what_the_driver_needs_has_no_version() {
        let model = VariantModel::new(Arc::new(Catalog::embedded()));
        let vf = |rev: Option<&str>| {
            let f = DeviceFacts::pci_function("19e5:a256", true, "hisi_acc_vfio_pci", None);
            match rev {
                Some(r) => f.with_param("physfn/revision", r),
                None => f,
            }
        };
        assert!(model.version(&vf(Some("0x30"))).is_ok());
        for (rev, shown) in [(Some("0x21"), "\"0x21\""), (None, "nothing")] {
            let e = model.version(&vf(rev)).expect_err("v2 and unknown PFs offer no migration").to_string();
            assert!(e.contains("physfn/revision") && e.contains(shown) && e.contains("0x30"), "{e}");
        }
    }

    #[test]
    fn set_rules_ignore_order_and_superset_is_directional() {
        assert!(relates(FactRule::SameSet, "sym;asym", "asym;sym"));
        assert!(!relates(FactRule::SameSet, "sym", "asym;sym"));
        assert!(relates(FactRule::Superset, "sym", "asym;sym"));
        assert!(!relates(FactRule::Superset, "asym;sym", "sym"));
        assert_eq!(intern("a.b"), intern(&String::from("a.b")));
    }
}
