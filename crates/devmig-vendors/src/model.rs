use std::fmt::Debug;

use crate::{Attributes, Decision, DeviceFacts, Requirement, VendorError};

/// The vendor driver's half of the `migration_version` interface for one driver.
///
/// Implementations are pure: they read [`DeviceFacts`] and strings, never sysfs.
pub trait VendorModel: Send + Sync + Debug {
    /// The driver-name prefix of every version string this model emits (`i915`).
    fn name(&self) -> &'static str;

    /// True when this model is the vendor driver for `dev`.
    fn recognizes(&self, dev: &DeviceFacts) -> bool;

    /// True when `version` is in one of this model's formats (by prefix or shape).
    fn claims_version(&self, version: &str) -> bool;

    /// The version string the driver shows for `dev`.
    fn version(&self, dev: &DeviceFacts) -> Result<String, VendorError>;

    /// Every rule applied to `source` written into `target`. An unparseable
    /// source is [`VendorError::BadVersion`]; a target the model cannot
    /// migrate is [`VendorError::Unsupported`].
    fn evaluate(&self, source: &str, target: &DeviceFacts) -> Result<Decision, VendorError>;

    /// The decision alone, as a driver's `store()` computes it: `None` when
    /// accepted, else the first failing rule. Always agrees with [`VendorModel::evaluate`].
    fn decide(&self, source: &str, target: &DeviceFacts) -> Result<Option<&'static str>, VendorError>;

    /// The typed step-a attributes of `dev`.
    fn attributes(&self, dev: &DeviceFacts) -> Result<Attributes, VendorError>;

    /// What a target's attributes must satisfy to possibly accept `source`.
    fn requirement(&self, source: &str) -> Result<Requirement, VendorError>;

    /// Per-instance settings to copy from `source` into a target mdev created
    /// from the type `target` (attribute name -> value), such as GVT-g's
    /// aggregator; the structured follow-up RFC's `dynamic_resources`.
    fn dynamic_resources(&self, _source: &str, _target: &DeviceFacts) -> Result<Vec<(String, String)>, VendorError> {
        Ok(Vec::new())
    }

    /// `base` with what `version` (a string in this model's format, as the kernel showed it for
    /// the device) says about the device put in its place: where the kernel exposes the
    /// attribute, step-a attributes come from the kernel's own string, and facts fill only what
    /// the string does not carry. The default trusts the facts alone.
    fn facts_from_version(&self, _version: &str, base: &DeviceFacts) -> Result<DeviceFacts, VendorError> {
        Ok(base.clone())
    }

    /// Every value set this model's requirements can put in a `OneOf` on `attr` (its catalog's
    /// compatible groups), so Placement traits can name them ([`crate::placement_traits`]); a
    /// group not listed is checked coarsely there. Single values need not be listed.
    fn one_of_groups(&self, _attr: &str) -> Vec<std::collections::BTreeSet<String>> {
        Vec::new()
    }

    /// Files the model reads for `dev` into [`DeviceFacts::params`], relative to the device's
    /// sysfs directory (`remote_storage_url`, `physfn/qat/cfg_services`); a `*` component
    /// stands for the one entry of that directory.
    fn param_files(&self, _dev: &DeviceFacts) -> Vec<String> {
        Vec::new()
    }
}
