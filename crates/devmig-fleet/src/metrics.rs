//! Prometheus metrics of a fleet replica: reports by outcome, placements by result, the time
//! step a and whole placements take, and the hosts it knows (fresh or stale, read at scrape).
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::ReportOutcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// The fleet's metrics (one set per replica).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reports: Family<OutcomeLabel, Counter>,
    placements: Family<OutcomeLabel, Counter>,
    step_a: Histogram,
    placement: Histogram,
    hosts: Family<StateLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("devmig_fleet");
        let reports = Family::<OutcomeLabel, Counter>::default();
        let placements = Family::<OutcomeLabel, Counter>::default();
        // 50 µs .. ~13 s, doubling.
        let step_a = Histogram::new((0..19).map(|i| 50e-6 * f64::from(1u32 << i)));
        let placement = Histogram::new((0..19).map(|i| 50e-6 * f64::from(1u32 << i)));
        let hosts = Family::<StateLabel, Gauge>::default();
        registry.register("reports", "Host reports by outcome (applied, unchanged, stale)", reports.clone());
        registry.register("placements", "Placements by result (placed, unplaced, failed)", placements.clone());
        registry.register("step_a_duration_seconds", "Step a and matching of one placement", step_a.clone());
        registry.register("placement_duration_seconds", "One whole placement", placement.clone());
        registry.register("hosts", "Hosts by state, as of the last scrape", hosts.clone());
        Metrics { registry, reports, placements, step_a, placement, hosts }
    }
}

impl Metrics {
    /// Records one report.
    pub fn report(&self, outcome: ReportOutcome) {
        let outcome = match outcome {
            ReportOutcome::Applied => "applied",
            ReportOutcome::Unchanged => "unchanged",
            ReportOutcome::Stale => "stale",
        };
        self.reports.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Records one placement: `None` when it failed with an error.
    pub fn placement(&self, placed: Option<bool>, step_a_seconds: f64, seconds: f64) {
        let outcome = match placed {
            Some(true) => "placed",
            Some(false) => "unplaced",
            None => "failed",
        };
        self.placements.get_or_create(&OutcomeLabel { outcome }).inc();
        if placed.is_some() {
            self.step_a.observe(step_a_seconds);
        }
        self.placement.observe(seconds);
    }

    /// The Prometheus text exposition, with host counts given by the caller.
    pub fn render(&self, fresh: i64, stale: i64) -> String {
        self.hosts.get_or_create(&StateLabel { state: "fresh" }).set(fresh);
        self.hosts.get_or_create(&StateLabel { state: "stale" }).set(stale);
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
