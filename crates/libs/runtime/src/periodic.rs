//! Work repeated on a period until the service stops: the samplers and the
//! schedules every service runs beside its consumers.

use std::{future::Future, time::Duration};
use tokio_util::sync::CancellationToken;

/// When the first round runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum First {
    /// At once.
    Now,
    /// One period after the start: a fleet restarting together does not run
    /// a heavy round all at once.
    AfterOnePeriod,
}

/// Waits `period`; false when `stop` fired first.
pub async fn sleep_or_stop(stop: &CancellationToken, period: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(period) => true,
    }
}

/// Runs `round` every `period` until `stop`. A round under way is never cut
/// short here: a long one watches `stop` itself.
pub async fn every<F, Fut>(period: Duration, first: First, stop: &CancellationToken, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    if first == First::AfterOnePeriod && !sleep_or_stop(stop, period).await {
        return;
    }
    loop {
        round().await;
        if !sleep_or_stop(stop, period).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn rounds_repeat_until_stopped_and_a_late_start_waits_its_period() {
        let stop = CancellationToken::new();
        let rounds = AtomicU32::new(0);
        every(Duration::from_millis(1), First::Now, &stop, || async {
            if rounds.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                stop.cancel();
            }
        })
        .await;
        assert_eq!(rounds.load(Ordering::SeqCst), 3, "no round after the stop");

        let rounds = AtomicU32::new(0);
        every(
            Duration::from_secs(3600),
            First::AfterOnePeriod,
            &stop,
            || async {
                rounds.fetch_add(1, Ordering::SeqCst);
            },
        )
        .await;
        assert_eq!(
            rounds.load(Ordering::SeqCst),
            0,
            "stopped before its first period"
        );
        assert!(!sleep_or_stop(&stop, Duration::from_secs(3600)).await);
    }
}
