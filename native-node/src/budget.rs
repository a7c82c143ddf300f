//! Byte budgets for the node's queues.
//!
//! Counting frames does not bound memory when one frame may be a megabyte: 4096 queued inputs
//! of up to 1 MiB is 4 GiB. Each queue that holds requests or peer messages also draws from a
//! budget of bytes: what a request or message holds is charged before it is queued and given
//! back when it leaves (its reply written, its message handled). A source that finds the budget
//! spent waits, and so stops reading its socket: TCP slows the sender, and the node's memory
//! stays bounded.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A number of bytes that may be held at once.
#[derive(Clone, Debug)]
pub struct ByteBudget {
    bytes: Arc<Semaphore>,
    bytes_max: usize,
}

/// Bytes held from a budget (or several), given back when dropped.
#[derive(Debug, Default)]
pub struct Charge {
    held: Vec<OwnedSemaphorePermit>,
}

impl ByteBudget {
    pub fn new(bytes_max: usize) -> ByteBudget {
        ByteBudget {
            bytes: Arc::new(Semaphore::new(bytes_max)),
            bytes_max,
        }
    }

    /// Waits until `bytes` are free and takes them. A charge larger than the whole budget takes
    /// all of it, so one oversized item waits for an empty queue instead of forever.
    pub async fn charge(&self, bytes: usize) -> Charge {
        let n = bytes.clamp(1, self.bytes_max) as u32;
        let permit = self
            .bytes
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the budget's semaphore is never closed");
        Charge { held: vec![permit] }
    }

    /// Bytes free now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

impl Charge {
    /// A charge on nothing (for inputs made outside the node process, as in the simulation).
    pub fn none() -> Charge {
        Charge::default()
    }

    /// One charge holding both.
    pub fn and(mut self, other: Charge) -> Charge {
        self.held.extend(other.held);
        self
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_spent_budget_waits_until_bytes_are_given_back() {
        let budget = ByteBudget::new(100);
        let a = budget.charge(60).await;
        let b = budget.charge(40).await;
        assert_eq!(budget.available(), 0);
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.charge(1)).await;
        assert!(waiting.is_err(), "charged beyond the budget");
        drop(a.and(Charge::none()));
        let c = tokio::time::timeout(Duration::from_millis(50), budget.charge(1_000)).await;
        assert!(
            c.is_err(),
            "an oversized charge takes the whole budget, so it waits for b"
        );
        drop(b);
        let c = budget.charge(1_000).await;
        assert_eq!(budget.available(), 0);
        drop(c);
        assert_eq!(budget.available(), 100);
    }
}
