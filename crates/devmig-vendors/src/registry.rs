use std::sync::Arc;

use crate::described::{
    AttributeSource, Described, OPAQUE_MODEL, conflicts, kernel_attributes, opaque_attributes, opaque_requirement,
};
use crate::models::{GvtModel, MttyModel, NvidiaModel, NvmeModel, QatModel, VariantModel};
use crate::{Attributes, Catalog, Decision, DeviceFacts, FieldCheck, Requirement, VendorError, VendorModel};

/// The models devmig ships, in dispatch order, by name.
const MODELS: [&str; 6] = ["i915", "nvme", "vfio_variant", "qat", "mtty", "nvidia"];

/// Every vendor model devmig ships, over one catalog; dispatches by device and by version string.
#[derive(Debug, Clone)]
pub struct Registry {
    catalog: Arc<Catalog>,
    models: Arc<Vec<Box<dyn VendorModel>>>,
}

impl Registry {
    /// All shipped models reading `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        let catalog = Arc::new(catalog);
        let models = MODELS.iter().filter_map(|name| Self::build(name, &catalog)).collect();
        Registry { catalog, models: Arc::new(models) }
    }

    fn build(name: &str, catalog: &Arc<Catalog>) -> Option<Box<dyn VendorModel>> {
        let model: Box<dyn VendorModel> = match name {
            "i915" => Box::new(GvtModel::new(catalog.clone())),
            "nvme" => Box::new(NvmeModel::new(catalog.clone())),
            "qat" => Box::new(QatModel::new(catalog.clone())),
            "mtty" => Box::new(MttyModel::new(catalog.clone())),
            "nvidia" => Box::new(NvidiaModel::new(catalog.clone())),
            "vfio_variant" => Box::new(VariantModel::new(catalog.clone())),
            _ => return None,
        };
        Some(model)
    }

    /// The catalog the models read.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The models, in dispatch order.
    pub fn models(&self) -> impl Iterator<Item = &dyn VendorModel> {
        self.models.iter().map(|m| m.as_ref())
    }

    /// The model called `name` (`i915`), if it is shipped and switched on.
    pub fn model_named(&self, name: &str) -> Option<&dyn VendorModel> {
        self.models().find(|m| m.name() == name)
    }

    /// The model that is the vendor driver of `dev`.
    pub fn model_for_device(&self, dev: &DeviceFacts) -> Option<&dyn VendorModel> {
        self.models().find(|m| m.recognizes(dev))
    }

    /// The model whose format `version` is in.
    pub fn model_for_version(&self, version: &str) -> Option<&dyn VendorModel> {
        self.models().find(|m| m.claims_version(version))
    }

    /// The version string of `dev`.
    pub fn version(&self, dev: &DeviceFacts) -> Result<String, VendorError> {
        self.model_for_device(dev).ok_or(VendorError::NoModel)?.version(dev)
    }

    /// The target's vendor decision on `source`. A string of another vendor
    /// is a rejection with rule `vendor_mismatch`, one no model knows with
    /// `source_version_invalid`, as the kernel would reject either (EINVAL).
    pub fn evaluate(&self, source: &str, target: &DeviceFacts) -> Result<Decision, VendorError> {
        let model = self.model_for_device(target).ok_or(VendorError::NoModel)?;
        if !model.claims_version(source) {
            let check = match self.model_for_version(source) {
                Some(m) => FieldCheck::new(
                    "vendor_mismatch",
                    "model",
                    m.name(),
                    model.name(),
                    false,
                    "the source string belongs to another vendor driver",
                ),
                None => FieldCheck::new(
                    "source_version_invalid",
                    "model",
                    "none",
                    model.name(),
                    false,
                    "no vendor model knows the source string",
                ),
            };
            return Ok(Decision { model: model.name().to_string(), checks: vec![check], at_resume: Vec::new() });
        }
        model.evaluate(source, target)
    }

    /// The target's decision alone (`None` = accepted, else the failing rule), without the explanation.
    pub fn decide(&self, source: &str, target: &DeviceFacts) -> Result<Option<&'static str>, VendorError> {
        let model = self.model_for_device(target).ok_or(VendorError::NoModel)?;
        if !model.claims_version(source) {
            let known = self.model_for_version(source).is_some();
            return Ok(Some(if known { "vendor_mismatch" } else { "source_version_invalid" }));
        }
        model.decide(source, target)
    }

    /// Settings to copy from `source` into an mdev created from the type `target`.
    pub fn dynamic_resources(&self, source: &str, target: &DeviceFacts) -> Result<Vec<(String, String)>, VendorError> {
        self.model_for_device(target).ok_or(VendorError::NoModel)?.dynamic_resources(source, target)
    }

    /// The step-a attributes of `dev`.
    pub fn attributes(&self, dev: &DeviceFacts) -> Result<Attributes, VendorError> {
        self.model_for_device(dev).ok_or(VendorError::NoModel)?.attributes(dev)
    }

    /// The requirement `source` places on targets. A string no model knows is opaque: any
    /// target whose kernel shows a string with its driver prefix may accept it.
    pub fn requirement(&self, source: &str) -> Result<Requirement, VendorError> {
        match self.model_for_version(source) {
            Some(model) => model.requirement(source),
            None => Ok(opaque_requirement(source)),
        }
    }

    /// The step-a description of a device: `facts` as discovery read them (None when it read
    /// none) and `kernel_version`, the string its kernel shows (None: no attribute). The model's
    /// attributes come from the kernel's string where there is one (facts fill the rest, and
    /// disagreements are listed), from facts where there is none; a kernel string no model
    /// knows is opaque. Every device with a kernel string also carries the `kernel.*`
    /// attributes, so an opaque source's step a finds it whatever its model.
    pub fn describe(
        &self,
        facts: Option<&DeviceFacts>,
        kernel_version: Option<&str>,
    ) -> Result<Described, VendorError> {
        let model = facts.and_then(|f| self.model_for_device(f).map(|m| (m, f)));
        let driver = facts.and_then(|f| f.driver.as_deref());
        let Some((model, facts)) = model else {
            let version = kernel_version.ok_or(VendorError::NoModel)?;
            return Ok(Described {
                model: OPAQUE_MODEL.to_string(),
                attributes: opaque_attributes(version, driver),
                source: AttributeSource::Opaque,
                conflicts: Vec::new(),
            });
        };
        let Some(version) = kernel_version else {
            return Ok(Described {
                model: model.name().to_string(),
                attributes: model.attributes(facts)?,
                source: AttributeSource::Facts,
                conflicts: Vec::new(),
            });
        };
        let (mut attributes, source, conflicts) = match model.facts_from_version(version, facts) {
            Ok(from_string) => {
                let attributes = model.attributes(&from_string)?;
                // Facts that describe the device on their own must say the same (an in-tree
                // driver without a module version cannot, and is not a conflict).
                let found = model.attributes(facts).map(|f| conflicts(&f, &attributes)).unwrap_or_default();
                (attributes, AttributeSource::KernelString, found)
            }
            // The kernel shows a string its own model cannot read: say so, and use the facts.
            Err(e) => (model.attributes(facts)?, AttributeSource::Facts, vec![format!("the kernel's string: {e}")]),
        };
        attributes.extend(kernel_attributes(version, driver));
        Ok(Described { model: model.name().to_string(), attributes, source, conflicts })
    }

    /// These models switched off (`mtty`): their devices are then opaque where the kernel shows
    /// a string, and unknown where it does not. Unknown names are an error naming them.
    pub fn without_models(&self, names: &[String]) -> Result<Registry, VendorError> {
        let known: Vec<&str> = self.models().map(|m| m.name()).collect();
        if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
            return Err(VendorError::bad_value("model", format!("{bad:?} is not one of {}", known.join(", "))));
        }
        let mut kept: Vec<Box<dyn VendorModel>> = Vec::new();
        for name in known.iter().filter(|n| !names.iter().any(|x| x == *n)) {
            kept.push(Self::build(name, &self.catalog).ok_or_else(|| VendorError::bad_value("model", *name))?);
        }
        Ok(Registry { catalog: self.catalog.clone(), models: Arc::new(kept) })
    }
}
