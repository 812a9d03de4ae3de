//! What several of kcp-tokio's test files share.

use std::time::Duration;

use kcp_tokio::{KcpListener, LoopStats};

/// Waits (at most `wait`) until the listener's published counters satisfy `done`,
/// and returns them.
pub(crate) async fn stats_until(
    listener: &KcpListener,
    wait: Duration,
    done: impl Fn(&LoopStats) -> bool,
) -> LoopStats {
    tokio::time::timeout(wait, async {
        loop {
            let stats = listener.stats();
            if done(&stats) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the listener's counters, not within {wait:?}: {:?}",
            listener.stats()
        )
    })
}
