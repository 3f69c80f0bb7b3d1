//! The agent's link to the fleet: pushes the host report on every claim change and
//! periodically, each with a higher generation than the last.
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Agent;
use crate::report::HostReport;

/// Where and how the agent reports.
#[derive(Debug, Clone)]
pub struct FleetLink {
    /// The fleet's base URL (`https://fleet:7080`).
    pub fleet_url: String,
    /// Bearer token the fleet accepts for reports.
    pub token: String,
    /// This host's name.
    pub host: String,
    /// This agent's URL as the fleet should call it.
    pub advertise: String,
    /// Push at least this often, changed or not.
    pub interval: Duration,
    /// Per-push timeout.
    pub timeout: Duration,
}

/// Generations: nanoseconds since the epoch, forced strictly increasing within a process, so a
/// restarted agent (later clock) also outranks everything it pushed before.
#[derive(Debug, Default)]
pub struct Generations {
    last: u64,
}

impl Generations {
    /// The next generation.
    pub fn advance(&mut self) -> u64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0));
        self.last = now.max(self.last + 1);
        self.last
    }
}

impl FleetLink {
    /// Builds this host's report at a fresh generation (blocking: walks sysfs).
    pub fn report(&self, agent: &Agent, generations: &mut Generations) -> Result<HostReport, crate::AgentError> {
        let devices = agent.device_records()?;
        Ok(HostReport {
            host: self.host.clone(),
            url: self.advertise.clone(),
            generation: generations.advance(),
            devices,
        })
    }

    /// Pushes one report; an error names the fleet's answer.
    pub async fn push(&self, client: &reqwest::Client, report: &HostReport) -> Result<(), String> {
        let url = format!("{}/api/v1/hosts/{}/report", self.fleet_url.trim_end_matches('/'), report.host);
        let resp = client
            .put(&url)
            .bearer_auth(&self.token)
            .timeout(self.timeout)
            .json(report)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            let status = resp.status();
            Err(format!("{url}: {status}: {}", resp.text().await.unwrap_or_default()))
        }
    }

    /// Pushes forever: at start, on every claim change and every `interval`. Failures are logged
    /// and retried at the next tick; they never stop the agent.
    pub async fn run(self, agent: Arc<Agent>, client: reqwest::Client) {
        let mut generations = Generations::default();
        loop {
            let a = Arc::clone(&agent);
            let link = self.clone();
            let mut g = std::mem::take(&mut generations);
            let built = tokio::task::spawn_blocking(move || (link.report(&a, &mut g), g)).await;
            match built {
                Ok((Ok(report), g)) => {
                    generations = g;
                    match self.push(&client, &report).await {
                        Ok(()) => tracing::debug!(generation = report.generation, "host report pushed"),
                        Err(e) => tracing::warn!(error = %e, "host report not accepted"),
                    }
                }
                Ok((Err(e), g)) => {
                    generations = g;
                    tracing::warn!(error = %e, "host report not built");
                }
                Err(e) => tracing::error!(error = %e, "host report task failed"),
            }
            tokio::select! {
                () = agent.changes.notified() => {}
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_strictly_increase() {
        let mut g = Generations::default();
        let mut last = 0;
        for _ in 0..1000 {
            let n = g.advance();
            assert!(n > last);
            last = n;
        }
    }
}
