//! Fleet test support: waiting (bounded) for agents' reports to arrive.
use std::sync::Arc;
use std::time::Duration;

use crate::agent_lab::eventually;

/// Waits, at most `limit`, until the fleet's store holds `n` hosts; panics naming how many came.
pub async fn wait_for_hosts(store: &Arc<devmig_fleet::Store>, n: usize, limit: Duration) {
    let what = format!("{n} hosts to report");
    eventually(&what, limit, || {
        let store = Arc::clone(store);
        async move {
            let held = tokio::task::spawn_blocking(move || store.hosts(devmig_fleet::now_ms()).expect("hosts").len())
                .await
                .expect("join");
            (held == n).then_some(())
        }
    })
    .await;
}
