//! The bounded queue of what a server sends its backend: a transport pushes without waiting,
//! the backend's task takes in order. While the backend is away, messages wait (up to the
//! bound) and go out once it is back; past the bound a push fails, and the first failure of a
//! run is logged.

use std::sync::atomic::{AtomicBool, Ordering};

use belfry_core::adapter::AdapterError;
use tokio::sync::mpsc;

/// The sending side; the receiving side is the `mpsc::Receiver` [`PublishQueue::new`] gives.
#[derive(Debug)]
pub struct PublishQueue<T> {
    tx: mpsc::Sender<T>,
    bound: usize,
    backend: &'static str,
    /// A push failed because the queue was full, and none succeeded since.
    dropping: AtomicBool,
}

impl<T> PublishQueue<T> {
    /// A queue of `bound` items (1 at least) for `backend` (named in the logs and errors).
    pub fn new(bound: usize, backend: &'static str) -> (PublishQueue<T>, mpsc::Receiver<T>) {
        let bound = bound.max(1);
        let (tx, rx) = mpsc::channel(bound);
        let queue = PublishQueue {
            tx,
            bound,
            backend,
            dropping: AtomicBool::new(false),
        };
        (queue, rx)
    }

    /// Queues `item` behind those waiting.
    ///
    /// # Errors
    ///
    /// [`AdapterError::Transport`] when the queue is full (the backend is away or slower than
    /// the messages) or its task is gone.
    pub fn push(&self, item: T) -> Result<(), AdapterError> {
        match self.tx.try_send(item) {
            Ok(()) => {
                if self.dropping.load(Ordering::Relaxed) {
                    self.dropping.store(false, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(_) => {
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        bound = self.bound,
                        backend = self.backend,
                        "publish queue full (backend away or too slow): messages are dropped"
                    );
                }
                Err(AdapterError::Transport(
                    format!("the {} publish queue is full", self.backend).into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn full_then_free_again() {
        let (queue, mut rx) = PublishQueue::new(2, "test");
        queue.push(1).unwrap();
        queue.push(2).unwrap();
        let full = queue.push(3).unwrap_err();
        assert_eq!(
            full.source().unwrap().to_string(),
            "the test publish queue is full"
        );
        assert_eq!(rx.try_recv().unwrap(), 1);
        queue.push(4).unwrap();
        drop(rx);
        assert!(queue.push(5).is_err());
    }

    use std::error::Error as _;
}
