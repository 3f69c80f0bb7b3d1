//! Prometheus metrics: checks by verdict, check duration, claims by state, sysfs errors and timeouts.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use devmig_core::{CheckReport, Verdict};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// The agent's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    checks: Family<VerdictLabel, Counter>,
    duration: Histogram,
    claims: Family<StateLabel, Gauge>,
    sysfs_errors: Counter,
    sysfs_timeouts: Counter,
    stuck_devices: Gauge,
    stuck_operations: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("devmig_agent");
        let checks = Family::<VerdictLabel, Counter>::default();
        // 20 µs .. ~5 s, doubling.
        let duration = Histogram::new((0..19).map(|i| 20e-6 * f64::from(1u32 << i)));
        let claims = Family::<StateLabel, Gauge>::default();
        let (sysfs_errors, sysfs_timeouts) = (Counter::default(), Counter::default());
        registry.register("checks", "Step-b checks by verdict", checks.clone());
        registry.register("check_duration_seconds", "Duration of one check", duration.clone());
        registry.register("claims", "Claims by state", claims.clone());
        registry.register("sysfs_errors", "sysfs operations that failed with an errno", sysfs_errors.clone());
        registry.register("sysfs_timeouts", "sysfs operations that timed out", sysfs_timeouts.clone());
        let (stuck_devices, stuck_operations) = (Gauge::default(), Gauge::default());
        registry.register(
            "stuck_devices",
            "Devices with a sysfs operation stuck in the kernel (they answer error at once)",
            stuck_devices.clone(),
        );
        registry.register(
            "sysfs_stuck_operations",
            "sysfs operations abandoned past their deadline and still in the kernel",
            stuck_operations.clone(),
        );
        Metrics { registry, checks, duration, claims, sysfs_errors, sysfs_timeouts, stuck_devices, stuck_operations }
    }
}

impl Metrics {
    /// Records one check.
    pub fn observe_check(&self, report: &CheckReport, seconds: f64) {
        let verdict = match report.verdict {
            Verdict::Identical => "identical",
            Verdict::Compatible => "compatible",
            Verdict::Incompatible => "incompatible",
            Verdict::Error => "error",
        };
        self.checks.get_or_create(&VerdictLabel { verdict }).inc();
        self.duration.observe(seconds);
        for r in &report.reasons {
            if r.is(devmig_core::ReasonCode::Timeout) || r.is(devmig_core::ReasonCode::DeviceStuck) {
                self.sysfs_timeouts.inc();
            } else if r.errno.is_some() {
                self.sysfs_errors.inc();
            }
        }
    }

    /// Sets the claims gauge from counts by state (at startup).
    pub fn set_claims(&self, counts: &[(crate::claims::ClaimState, i64)]) {
        use crate::claims::ClaimState::*;
        for state in [Active, Released, Expired, Orphaned] {
            let n = counts.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
            self.claims.get_or_create(&StateLabel { state: state_name(state) }).set(n);
        }
    }

    /// A claim moved from `from` (None: new) to `to`.
    pub fn claim_moved(&self, from: Option<crate::claims::ClaimState>, to: crate::claims::ClaimState) {
        if let Some(f) = from {
            self.claims.get_or_create(&StateLabel { state: state_name(f) }).dec();
        }
        self.claims.get_or_create(&StateLabel { state: state_name(to) }).inc();
    }

    /// Sets the gauges of stuck devices and operations.
    pub fn set_stuck(&self, devices: usize, operations: usize) {
        self.stuck_devices.set(i64::try_from(devices).unwrap_or(i64::MAX));
        self.stuck_operations.set(i64::try_from(operations).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn state_name(s: crate::claims::ClaimState) -> &'static str {
    use crate::claims::ClaimState::*;
    match s {
        Active => "active",
        Released => "released",
        Expired => "expired",
        Orphaned => "orphaned",
        Completed => "completed",
    }
}
