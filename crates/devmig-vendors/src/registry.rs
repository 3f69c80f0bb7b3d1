use std::sync::Arc;

use crate::models::{GvtModel, MttyModel, NvmeModel, QatModel};
use crate::{Attributes, Catalog, Decision, DeviceFacts, FieldCheck, Requirement, VendorError, VendorModel};

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
        let models: Vec<Box<dyn VendorModel>> = vec![
            Box::new(GvtModel::new(catalog.clone())),
            Box::new(NvmeModel::new(catalog.clone())),
            Box::new(QatModel::new(catalog.clone())),
            Box::new(MttyModel::new(catalog.clone())),
        ];
        Registry { catalog, models: Arc::new(models) }
    }

    /// The catalog the models read.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The models, in dispatch order.
    pub fn models(&self) -> impl Iterator<Item = &dyn VendorModel> {
        self.models.iter().map(|m| m.as_ref())
    }

    /// The model that is the vendor driver of `dev`.
    pub fn model_for_device(&self, dev: &DeviceFacts) -> Option<&dyn VendorModel> {
        self.models().find(|m| m.recognizes(dev))
    }

    /// The model whose format `version` is in.
    pub fn model_for_version(&self, version: &str) -> Option<&dyn VendorModel> {
        self.models().find(|m| m.claims_version(version))
    }

    /// Every configuration file name any model reads.
    pub fn param_files(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.models().flat_map(|m| m.param_files().iter().copied())
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
            return Ok(Decision { model: model.name().to_string(), checks: vec![check] });
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

    /// The requirement `source` places on targets.
    pub fn requirement(&self, source: &str) -> Result<Requirement, VendorError> {
        self.model_for_version(source)
            .ok_or_else(|| VendorError::UnknownVersion(source.chars().take(120).collect()))?
            .requirement(source)
    }
}
