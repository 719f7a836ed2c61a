//! A fault hook for crash testing: when armed with N, the N-th step of any mutating operation
//! returns [`Error::Fault`] and the operation stops right there, skipping its cleanup, exactly as
//! if the process had died. Reopening the pool then plays the part of the restarted agent.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// Counts steps and fails the armed one.
#[derive(Debug, Default)]
pub struct Faults {
    fail_at: AtomicUsize,
    seen: AtomicUsize,
}

impl Faults {
    /// Arms the hook: step `n` (1-based) fails; 0 disarms. Resets the step count.
    pub fn arm(&self, n: usize) {
        self.seen.store(0, Ordering::SeqCst);
        self.fail_at.store(n, Ordering::SeqCst);
    }

    /// Marks a step boundary between two durable actions.
    pub fn step(&self, what: &str) -> Result<()> {
        let step = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_at.load(Ordering::SeqCst) == step {
            tracing::warn!(step, what, "injected fault");
            return Err(Error::Fault {
                step,
                what: what.to_string(),
            });
        }
        Ok(())
    }
}
