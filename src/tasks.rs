//! Background tasks that must not die quietly.
//!
//! A panic in a plain `tokio::spawn` ends that task and nothing else: the service keeps
//! answering while, say, nothing expires any more. [`supervise`] logs the panic at ERROR
//! and starts the task again, so one bad pass costs one pass.

use std::any::Any;
use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

/// The pause before a panicked task starts again, so a task that panics at once every
/// time cannot spin.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Runs `task()` until it returns normally; each time it panics, logs the panic at ERROR
/// and runs `task()` again after [`RESTART_DELAY`].
pub fn supervise<F, Fut>(name: &'static str, task: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    supervise_with_delay(name, task, RESTART_DELAY)
}

fn supervise_with_delay<F, Fut>(name: &'static str, task: F, delay: Duration) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match tokio::spawn(task()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    let panic = describe(e.into_panic());
                    tracing::error!(task = name, %panic, "background task panicked; restarting it");
                    tokio::time::sleep(delay).await;
                }
                Err(_) => return,
            }
        }
    })
}

fn describe(panic: Box<dyn Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(s) => *s,
        Err(panic) => panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .unwrap_or_else(|| "a panic without a message".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_task_that_panics_is_started_again_until_it_returns() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let handle = supervise_with_delay(
            "test",
            move || {
                let runs = counted.clone();
                async move {
                    if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                        panic!("a bad pass");
                    }
                }
            },
            Duration::from_millis(1),
        );

        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("the supervisor ends once the task returns")
            .unwrap();

        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "two panics, then a clean run"
        );
    }
}
