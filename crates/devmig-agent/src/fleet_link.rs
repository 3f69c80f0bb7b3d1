//! The agent's link to the fleet: pushes the host report on every claim change and
//! periodically, each with a higher generation than the last.
use std::path::PathBuf;
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
    /// This agent's identity ([`crate::identity::load_or_create`]).
    pub identity: String,
    /// This agent's URL as the fleet should call it.
    pub advertise: String,
    /// Push at least this often, changed or not.
    pub interval: Duration,
    /// Per-push timeout.
    pub timeout: Duration,
    /// Where the last generation is kept across restarts (`None`: in memory only).
    pub generation_file: Option<PathBuf>,
}

/// Generations: nanoseconds since the epoch, forced strictly increasing. With a file, the last
/// one survives restarts, so a restarted agent outranks everything it pushed before even when
/// the clock stepped back.
#[derive(Debug, Default)]
pub struct Generations {
    last: u64,
    file: Option<PathBuf>,
}

impl Generations {
    /// Generations persisted in `file` (read now, written on every advance; a missing or
    /// unreadable file starts from the clock).
    pub fn persisted(file: PathBuf) -> Generations {
        let last = std::fs::read_to_string(&file).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        Generations { last, file: Some(file) }
    }

    /// Starts again from the clock: the fleet said the generations run outside its clock's
    /// window (this host's clock was far ahead once, and the last generation kept it there).
    pub fn rebase(&mut self) {
        self.last = 0;
        if let Some(f) = &self.file {
            if let Err(e) = std::fs::remove_file(f) {
                tracing::warn!(file = %f.display(), error = %e, "could not reset the report generation");
            }
        }
    }

    /// The next generation.
    pub fn advance(&mut self) -> u64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0));
        self.last = now.max(self.last + 1);
        if let Some(f) = &self.file {
            let tmp = f.with_extension("tmp");
            let saved = std::fs::write(&tmp, format!("{}\n", self.last)).and_then(|()| std::fs::rename(&tmp, f));
            if let Err(e) = saved {
                tracing::warn!(file = %f.display(), error = %e, "could not save the report generation");
            }
        }
        self.last
    }
}

/// Why the fleet did not take a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRefused {
    /// The problem code of the fleet's answer, when it sent one.
    pub code: Option<String>,
    /// What happened, with the fleet's answer.
    pub text: String,
}

impl std::fmt::Display for PushRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl FleetLink {
    /// Builds this host's report at a fresh generation (blocking: walks sysfs).
    pub fn report(&self, agent: &Agent, generations: &mut Generations) -> Result<HostReport, crate::AgentError> {
        let devices = agent.device_records()?;
        Ok(HostReport {
            host: self.host.clone(),
            url: self.advertise.clone(),
            identity: self.identity.clone(),
            generation: generations.advance(),
            devices,
        })
    }

    /// Pushes one report; an error names the fleet's answer (and its problem code, when it has one).
    pub async fn push(&self, client: &reqwest::Client, report: &HostReport) -> Result<(), PushRefused> {
        let url = format!("{}/api/v1/hosts/{}/report", self.fleet_url.trim_end_matches('/'), report.host);
        let resp = client
            .put(&url)
            .bearer_auth(&self.token)
            .timeout(self.timeout)
            .json(report)
            .send()
            .await
            .map_err(|e| PushRefused { code: None, text: format!("{url}: {e}") })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            let code = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_string));
            Err(PushRefused { code, text: format!("{url}: {status}: {body}") })
        }
    }

    /// Pushes forever: at start, on every claim change and every `interval`. Failures are logged
    /// and retried at the next tick; they never stop the agent.
    pub async fn run(self, agent: Arc<Agent>, client: reqwest::Client) {
        let mut generations = match &self.generation_file {
            Some(f) => Generations::persisted(f.clone()),
            None => Generations::default(),
        };
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
                        Err(e) if e.code.as_deref() == Some("generation_out_of_window") => {
                            tracing::warn!(error = %e, "the fleet's clock and this host's generations disagree; starting again from this clock");
                            generations.rebase();
                        }
                        Err(e) if e.code.as_deref() == Some("host_identity_conflict") => tracing::error!(
                            error = %e,
                            host = %self.host,
                            identity = %self.identity,
                            "the fleet knows this host name under another agent's identity: give this agent its own \
                             --host-name, or, if it replaced that agent, run `devmig fleet forget HOST` on the fleet"
                        ),
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
    fn persisted_generations_outrank_a_clock_that_stepped_back() {
        let dir = tempfile::tempdir().expect("dir");
        let f = dir.path().join("fleet-generation");
        // As if an earlier run had pushed a generation far in the future of this clock.
        std::fs::write(&f, format!("{}\n", u64::MAX / 2)).expect("write");
        let mut g = Generations::persisted(f.clone());
        let a = g.advance();
        assert_eq!(a, u64::MAX / 2 + 1);
        let mut again = Generations::persisted(f);
        assert!(again.advance() > a);
    }

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
