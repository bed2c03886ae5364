//! `RunContext`: the ambient things a stage needs, passed explicitly.
//!
//! No library crate reads environment variables, global RNGs or the working directory; what they
//! would have read comes in here.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Receives progress from long stages. Implementations must be cheap: stages call them often.
pub trait Progress: Send + Sync {
    /// A unit of work of `total` steps (if known) begins.
    fn start(&self, stage: &str, total: Option<u64>);
    /// `done` steps of the current unit are finished; `message` says where it stands.
    fn update(&self, done: u64, message: &str);
    /// The current unit is finished.
    fn finish(&self, message: &str);
}

/// A [`Progress`] that shows nothing (libraries' default, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn update(&self, _: u64, _: &str) {}
    fn finish(&self, _: &str) {}
}

/// Seed, run directory, threads, deadline, cancellation and progress for one run.
#[derive(Clone)]
pub struct RunContext {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Where artifacts go.
    pub run_dir: PathBuf,
    /// Worker threads a stage may use.
    pub threads: usize,
    /// Work should stop (cleanly, keeping what is done) after this instant.
    pub deadline: Option<Instant>,
    /// Set to ask running work to stop.
    pub cancel: Arc<AtomicBool>,
    /// Where progress goes.
    pub progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("seed", &self.seed)
            .field("run_dir", &self.run_dir)
            .field("threads", &self.threads)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl RunContext {
    /// A context with one thread, no deadline and no progress output.
    pub fn new(seed: u64, run_dir: impl Into<PathBuf>) -> Self {
        RunContext {
            seed,
            run_dir: run_dir.into(),
            threads: 1,
            deadline: None,
            cancel: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(Silent),
        }
    }

    /// True when work should stop: cancelled, or past the deadline.
    pub fn should_stop(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// A seed for a named sub-task, derived from the run seed (SplitMix64 of seed ⊕ hash(name)).
    pub fn derive_seed(&self, name: &str) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        splitmix64(self.seed ^ h)
    }
}

/// One step of SplitMix64: a good 64-bit mixer.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_are_stable_and_distinct() {
        let ctx = RunContext::new(42, "/tmp");
        assert_eq!(ctx.derive_seed("split"), ctx.derive_seed("split"));
        assert_ne!(ctx.derive_seed("split"), ctx.derive_seed("search"));
        assert_ne!(
            ctx.derive_seed("split"),
            RunContext::new(43, "/tmp").derive_seed("split")
        );
        assert!(!ctx.should_stop());
        ctx.cancel.store(true, Ordering::Relaxed);
        assert!(ctx.should_stop());
    }
}
