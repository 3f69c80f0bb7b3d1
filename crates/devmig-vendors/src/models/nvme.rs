//! NVMe VFs connected to remote storage.
use std::sync::Arc;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::models::{
    ID_MESSAGE, driver_version, fields, model_attr, model_constraint, parse_pci_id, parse_version_field, pci_id,
    version_constraint, version_outcomes,
};
use crate::{
    AttrValue, Attributes, Catalog, Constraint, Decision, DeviceFacts, DriverVersion, Outcome, PciId, Requirement,
    VendorError, VendorModel, first_failure,
};

const NAME: &str = "nvme";
/// Per-VF configuration file the model reads: the configured remote storage URL.
pub const URL_PARAM: &str = "remote_storage_url";

/// Everything outside printable ASCII, plus space and `%`, is percent-encoded,
/// so the encoded field is printable ASCII and decodes back byte for byte.
const FIELD: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(0x7f);

/// Encodes any string as a printable-ASCII version-string field.
pub fn encode_field(s: &str) -> String {
    utf8_percent_encode(s, FIELD).to_string()
}

/// Decodes a field made by [`encode_field`].
pub fn decode_field(s: &str) -> Result<String, VendorError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|e| VendorError::bad_value("field", format!("not UTF-8 once decoded: {e}")))
}

/// Normalises a storage URL so equal locations compare equal: scheme and
/// host lower-cased, default ports dropped, dot segments and escapes
/// normalised (WHATWG URL rules).
pub fn normalize_url(raw: &str) -> Result<String, VendorError> {
    let bad = |why: String| VendorError::bad_value("storage URL", why);
    let mut url = url::Url::parse(raw.trim()).map_err(|e| bad(format!("{raw:?} is not a URL: {e}")))?;
    if let Some(host) = url.host_str().map(str::to_ascii_lowercase) {
        url.set_host(Some(&host)).map_err(|e| bad(format!("{raw:?}: host: {e}")))?;
    }
    Ok(url.to_string())
}

/// A parsed NVMe VF version: `nvme-v1-<vendor:device>-<driver version>-<encoded URL>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmeVersion {
    /// VF vendor:device.
    pub id: PciId,
    /// nvme driver version.
    pub driver: DriverVersion,
    /// Normalised remote storage URL.
    pub url: String,
}

impl NvmeVersion {
    /// Parses the emitted form.
    pub fn parse(s: &str) -> Result<Self, VendorError> {
        let rest =
            s.strip_prefix("nvme-v1-").ok_or_else(|| VendorError::bad_version(NAME, s, "expected prefix nvme-v1-"))?;
        let f = fields(NAME, rest, 3)?;
        let url = decode_field(f[2]).map_err(|e| VendorError::bad_version(NAME, s, e))?;
        Ok(NvmeVersion { id: parse_pci_id(NAME, s, f[0])?, driver: parse_version_field(NAME, s, f[1])?, url })
    }

    /// The emitted form.
    pub fn render(&self) -> String {
        format!("nvme-v1-{}-{}-{}", self.id, self.driver, encode_field(&self.url))
    }
}

/// The NVMe VF model.
#[derive(Debug)]
pub struct NvmeModel {
    catalog: Arc<Catalog>,
}

impl NvmeModel {
    /// A model reading `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        NvmeModel { catalog }
    }

    fn target(&self, dev: &DeviceFacts) -> Result<NvmeVersion, VendorError> {
        if !dev.is_vf() {
            return Err(VendorError::unsupported(NAME, "only SR-IOV VFs migrate"));
        }
        let raw = dev
            .params
            .get(URL_PARAM)
            .ok_or_else(|| VendorError::unsupported(NAME, format!("no {URL_PARAM} configured")))?;
        let url = normalize_url(raw).map_err(|e| VendorError::unsupported(NAME, e))?;
        Ok(NvmeVersion { id: pci_id(NAME, dev)?, driver: driver_version(NAME, dev)?, url })
    }
}

impl NvmeModel {
    /// The parsed source, its normalised URL, and the target.
    fn pair(&self, source: &str, target: &DeviceFacts) -> Result<(NvmeVersion, String, NvmeVersion), VendorError> {
        let s = NvmeVersion::parse(source)?;
        let t = self.target(target)?;
        // A string this model emitted carries a normalised URL already: skip the second parse.
        let source_url = if s.url == t.url {
            s.url.clone()
        } else {
            normalize_url(&s.url).map_err(|e| VendorError::bad_version(NAME, source, e))?
        };
        Ok((s, source_url, t))
    }

    fn outcomes(&self, s: &NvmeVersion, source_url: &str, t: &NvmeVersion) -> [Outcome; 4] {
        let [major, minor] = version_outcomes(
            ["nvme.driver_version_major", "nvme.driver_version_minor"],
            "driver_version",
            s.driver,
            t.driver,
        );
        [
            Outcome::new(
                "nvme.function_group",
                "pci_id",
                Catalog::reaches(&self.catalog.nvme.functions, s.id, t.id),
                ID_MESSAGE,
            ),
            major,
            minor,
            Outcome::new(
                "nvme.storage_url",
                "remote_storage_url",
                source_url == t.url,
                "the VF must be connected to the same remote storage",
            ),
        ]
    }
}

impl VendorModel for NvmeModel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn recognizes(&self, dev: &DeviceFacts) -> bool {
        dev.is_vf() && dev.driver.as_deref() == Some(NAME)
    }

    fn claims_version(&self, version: &str) -> bool {
        version.starts_with("nvme-")
    }

    fn version(&self, dev: &DeviceFacts) -> Result<String, VendorError> {
        Ok(self.target(dev)?.render())
    }

    fn evaluate(&self, source: &str, target: &DeviceFacts) -> Result<Decision, VendorError> {
        let (s, source_url, t) = self.pair(source, target)?;
        let outcomes = self.outcomes(&s, &source_url, &t);
        Ok(Decision::from_outcomes(NAME, &outcomes, |o| match o.field {
            "pci_id" => (s.id.to_string(), t.id.to_string()),
            "driver_version" => (s.driver.to_string(), t.driver.to_string()),
            _ => (source_url.clone(), t.url.clone()),
        }))
    }

    fn decide(&self, source: &str, target: &DeviceFacts) -> Result<Option<&'static str>, VendorError> {
        let (s, source_url, t) = self.pair(source, target)?;
        Ok(first_failure(&self.outcomes(&s, &source_url, &t)))
    }

    fn attributes(&self, dev: &DeviceFacts) -> Result<Attributes, VendorError> {
        let t = self.target(dev)?;
        Ok(Attributes::from([
            model_attr(NAME),
            ("nvme.pci_id".to_string(), AttrValue::String(t.id.to_string())),
            ("nvme.driver_version".to_string(), AttrValue::Semver(t.driver)),
            ("nvme.storage_url".to_string(), AttrValue::String(t.url)),
        ]))
    }

    fn facts_from_version(&self, version: &str, base: &DeviceFacts) -> Result<DeviceFacts, VendorError> {
        let v = NvmeVersion::parse(version)?;
        let mut facts = DeviceFacts { driver_version: Some(v.driver.to_string()), pci_id: Some(v.id), ..base.clone() };
        facts.params.insert(URL_PARAM.to_string(), v.url);
        Ok(facts)
    }

    fn one_of_groups(&self, attr: &str) -> Vec<std::collections::BTreeSet<String>> {
        if attr == "nvme.pci_id" { Catalog::id_groups(&self.catalog.nvme.functions) } else { Vec::new() }
    }

    fn requirement(&self, source: &str) -> Result<Requirement, VendorError> {
        let s = NvmeVersion::parse(source)?;
        let url = normalize_url(&s.url).map_err(|e| VendorError::bad_version(NAME, source, e))?;
        let allowed = Catalog::targets_of(&self.catalog.nvme.functions, s.id);
        Ok(Requirement {
            all: vec![
                model_constraint(NAME),
                Constraint::OneOf {
                    attr: "nvme.pci_id".to_string(),
                    values: allowed.iter().map(PciId::to_string).collect(),
                },
                version_constraint("nvme.driver_version", s.driver),
                Constraint::Equals { attr: "nvme.storage_url".to_string(), value: AttrValue::String(url) },
            ],
        })
    }

    fn param_files(&self, _dev: &DeviceFacts) -> Vec<String> {
        vec![URL_PARAM.to_string()]
    }
}
