use serde::Serialize;

/// One rule a model evaluated for a (source, target) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FieldCheck {
    /// Stable rule code, namespaced by model (`i915.gvt_minor`); the reason code when it fails.
    pub rule: String,
    /// The field the rule reads (`gvt_version`).
    pub field: String,
    /// The source's value.
    pub source_value: String,
    /// The target's value.
    pub target_value: String,
    /// Whether the rule accepted.
    pub passed: bool,
    /// One human sentence: what the rule requires.
    pub message: String,
}

impl FieldCheck {
    pub(crate) fn new(
        rule: &str,
        field: &str,
        source: impl ToString,
        target: impl ToString,
        passed: bool,
        message: impl Into<String>,
    ) -> Self {
        FieldCheck {
            rule: rule.to_string(),
            field: field.to_string(),
            source_value: source.to_string(),
            target_value: target.to_string(),
            passed,
            message: message.into(),
        }
    }
}

/// A model's decision on one source string for one target: every rule it evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Decision {
    /// The model that decided.
    pub model: String,
    /// Every rule evaluated, in the model's order.
    pub checks: Vec<FieldCheck>,
    /// What the model cannot see and only the destination driver's resume decides (a variant
    /// driver's firmware checks): an accepted decision is "compatible as far as the host shows".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_resume: Vec<String>,
}

impl Decision {
    /// True when every rule passed.
    pub fn accepted(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The rules that failed.
    pub fn rejections(&self) -> impl Iterator<Item = &FieldCheck> {
        self.checks.iter().filter(|c| !c.passed)
    }
}

/// One rule's result without rendered values: all a decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Stable rule code.
    pub rule: &'static str,
    /// Field the rule reads.
    pub field: &'static str,
    /// Whether it accepted.
    pub passed: bool,
    /// What the rule requires.
    pub message: &'static str,
}

impl Outcome {
    pub(crate) const fn new(rule: &'static str, field: &'static str, passed: bool, message: &'static str) -> Self {
        Outcome { rule, field, passed, message }
    }
}

impl Decision {
    /// Renders outcomes into a full decision; `values` gives (source, target) text per rule.
    pub(crate) fn from_outcomes(
        model: &str,
        outcomes: &[Outcome],
        values: impl Fn(&Outcome) -> (String, String),
    ) -> Self {
        let checks = outcomes
            .iter()
            .map(|o| {
                let (source_value, target_value) = values(o);
                FieldCheck {
                    rule: o.rule.to_string(),
                    field: o.field.to_string(),
                    source_value,
                    target_value,
                    passed: o.passed,
                    message: o.message.to_string(),
                }
            })
            .collect();
        Decision { model: model.to_string(), checks, at_resume: Vec::new() }
    }
}

/// The first failing rule, or `None` when every rule passed.
pub(crate) fn first_failure(outcomes: &[Outcome]) -> Option<&'static str> {
    outcomes.iter().find(|o| !o.passed).map(|o| o.rule)
}
