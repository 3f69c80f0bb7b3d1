//! The kernel's sample mdev driver `mtty` (virtual serial ports).
use std::sync::Arc;

use crate::models::{
    driver_version, fields, model_attr, model_constraint, parse_version_field, version_constraint, version_outcomes,
};
use crate::{
    AttrValue, Attributes, Catalog, Constraint, Decision, DeviceFacts, DriverVersion, Outcome, Requirement,
    VendorError, VendorModel, first_failure,
};

const NAME: &str = "mtty";

/// A parsed mtty version: `mtty-v1-<module version>-<type>` (`mtty-v1-0.1.0-mtty-2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MttyVersion {
    /// mtty module version.
    pub driver: DriverVersion,
    /// Type id.
    pub mdev_type: String,
}

impl MttyVersion {
    /// Parses the emitted form.
    pub fn parse(s: &str) -> Result<Self, VendorError> {
        let rest =
            s.strip_prefix("mtty-v1-").ok_or_else(|| VendorError::bad_version(NAME, s, "expected prefix mtty-v1-"))?;
        let f = fields(NAME, rest, 2)?;
        Ok(MttyVersion { driver: parse_version_field(NAME, s, f[0])?, mdev_type: f[1].to_string() })
    }

    /// The emitted form.
    pub fn render(&self) -> String {
        format!("mtty-v1-{}-{}", self.driver, self.mdev_type)
    }
}

/// The mtty model.
#[derive(Debug)]
pub struct MttyModel {
    catalog: Arc<Catalog>,
}

impl MttyModel {
    /// A model reading `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        MttyModel { catalog }
    }

    fn target(&self, dev: &DeviceFacts) -> Result<(MttyVersion, u32), VendorError> {
        let ty = dev
            .mdev_type
            .as_deref()
            .filter(|_| dev.is_mdev_like())
            .ok_or_else(|| VendorError::unsupported(NAME, "not an mdev"))?;
        let ports = self
            .catalog
            .mtty_ports(ty)
            .ok_or_else(|| VendorError::unsupported(NAME, format!("type {ty:?} is not in the catalog")))?;
        Ok((MttyVersion { driver: driver_version(NAME, dev)?, mdev_type: ty.to_string() }, ports))
    }

    fn source(&self, s: &str) -> Result<(MttyVersion, u32), VendorError> {
        let v = MttyVersion::parse(s)?;
        let ports = self.catalog.mtty_ports(&v.mdev_type).ok_or_else(|| {
            VendorError::bad_version(NAME, s, format!("type {:?} is not in the catalog", v.mdev_type))
        })?;
        Ok((v, ports))
    }
}

fn outcomes(s: &MttyVersion, source_ports: u32, t: &MttyVersion, target_ports: u32) -> [Outcome; 3] {
    let [major, minor] = version_outcomes(
        ["mtty.driver_version_major", "mtty.driver_version_minor"],
        "driver_version",
        s.driver,
        t.driver,
    );
    [
        Outcome::new(
            "mtty.ports",
            "ports",
            source_ports == target_ports,
            "the target must have the same number of serial ports",
        ),
        major,
        minor,
    ]
}

impl VendorModel for MttyModel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn recognizes(&self, dev: &DeviceFacts) -> bool {
        dev.is_mdev_like() && (dev.driver.as_deref() == Some(NAME) || dev.parent.as_deref() == Some(NAME))
    }

    fn claims_version(&self, version: &str) -> bool {
        version.starts_with("mtty-")
    }

    fn version(&self, dev: &DeviceFacts) -> Result<String, VendorError> {
        Ok(self.target(dev)?.0.render())
    }

    fn evaluate(&self, source: &str, target: &DeviceFacts) -> Result<Decision, VendorError> {
        let ((s, sp), (t, tp)) = (self.source(source)?, self.target(target)?);
        Ok(Decision::from_outcomes(NAME, &outcomes(&s, sp, &t, tp), |o| match o.field {
            "ports" => (format!("{sp} ({})", s.mdev_type), format!("{tp} ({})", t.mdev_type)),
            _ => (s.driver.to_string(), t.driver.to_string()),
        }))
    }

    fn decide(&self, source: &str, target: &DeviceFacts) -> Result<Option<&'static str>, VendorError> {
        let ((s, sp), (t, tp)) = (self.source(source)?, self.target(target)?);
        Ok(first_failure(&outcomes(&s, sp, &t, tp)))
    }

    fn attributes(&self, dev: &DeviceFacts) -> Result<Attributes, VendorError> {
        let (t, ports) = self.target(dev)?;
        Ok(Attributes::from([
            model_attr(NAME),
            ("mtty.ports".to_string(), AttrValue::Int(i64::from(ports))),
            ("mtty.driver_version".to_string(), AttrValue::Semver(t.driver)),
        ]))
    }

    fn facts_from_version(&self, version: &str, base: &DeviceFacts) -> Result<DeviceFacts, VendorError> {
        let v = MttyVersion::parse(version)?;
        Ok(DeviceFacts { driver_version: Some(v.driver.to_string()), mdev_type: Some(v.mdev_type), ..base.clone() })
    }

    fn requirement(&self, source: &str) -> Result<Requirement, VendorError> {
        let (s, ports) = self.source(source)?;
        Ok(Requirement {
            all: vec![
                model_constraint(NAME),
                Constraint::Equals { attr: "mtty.ports".to_string(), value: AttrValue::Int(i64::from(ports)) },
                version_constraint("mtty.driver_version", s.driver),
            ],
        })
    }
}
