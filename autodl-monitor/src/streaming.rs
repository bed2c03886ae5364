//! Streaming drift detectors: values arrive one at a time and each detector says, after each,
//! whether it has seen a change.
//!
//! - [`PageHinkley`]: cumulative deviation from the running mean, in both directions (Page
//!   1954; Hinkley 1971). Defaults and update rule as river's `drift.PageHinkley`.
//! - [`Ddm`]: the drift detection method for a stream of errors (1 wrong, 0 right): the error
//!   rate's mean plus standard deviation against its minimum (Gama et al. 2004). Defaults and
//!   update rule as river's `drift.binary.DDM`.
//! - [`Adwin`]: adaptive windowing (Bifet and Gavaldà 2007) in its exact form (ADWIN0): the
//!   window drops its oldest values while any split into an older and a newer part has means
//!   further apart than the bound `ε_cut`. Every split is checked, every 32nd value as in
//!   river (river's ADWIN also compresses the window into exponential buckets, checking only
//!   the bucket boundaries, so its detections come at slightly different points).
//!
//! A detector that reports a change starts afresh with the next value (as river's do).

use std::collections::VecDeque;

/// A detector fed one value at a time.
pub trait Detector {
    /// Adds a value; returns whether a change is detected now.
    fn update(&mut self, x: f64) -> bool;
}

/// The row numbers (from 0) at which `detector` reports a change in `values`.
pub fn detections(
    detector: &mut dyn Detector,
    values: impl IntoIterator<Item = f64>,
) -> Vec<usize> {
    values
        .into_iter()
        .enumerate()
        .filter_map(|(i, x)| detector.update(x).then_some(i))
        .collect()
}

/// The Page–Hinkley test, both directions.
#[derive(Debug, Clone, PartialEq)]
pub struct PageHinkley {
    /// Values seen before a change can be reported.
    pub min_instances: usize,
    /// Magnitude of change tolerated.
    pub delta: f64,
    /// Cumulative deviation that signals a change.
    pub threshold: f64,
    /// Forgetting factor of the cumulative sums.
    pub alpha: f64,
    n: usize,
    mean: f64,
    sum_increase: f64,
    sum_decrease: f64,
    min_increase: f64,
    max_decrease: f64,
    detected: bool,
}

impl Default for PageHinkley {
    fn default() -> Self {
        PageHinkley::new(30, 0.005, 50.0, 1.0 - 0.0001)
    }
}

impl PageHinkley {
    /// A detector with these settings (river's defaults: 30, 0.005, 50, 1 − 1e-4).
    pub fn new(min_instances: usize, delta: f64, threshold: f64, alpha: f64) -> Self {
        PageHinkley {
            min_instances,
            delta,
            threshold,
            alpha,
            n: 0,
            mean: 0.0,
            sum_increase: 0.0,
            sum_decrease: 0.0,
            min_increase: f64::INFINITY,
            max_decrease: -1.0,
            detected: false,
        }
    }

    fn reset(&mut self) {
        *self = PageHinkley::new(self.min_instances, self.delta, self.threshold, self.alpha);
    }
}

impl Detector for PageHinkley {
    fn update(&mut self, x: f64) -> bool {
        if self.detected {
            self.reset();
        }
        self.n += 1;
        self.mean += (x - self.mean) / self.n as f64;
        let dev = x - self.mean;
        self.sum_increase = self.alpha * self.sum_increase + dev - self.delta;
        self.sum_decrease = self.alpha * self.sum_decrease + dev + self.delta;
        self.min_increase = self.min_increase.min(self.sum_increase);
        self.max_decrease = self.max_decrease.max(self.sum_decrease);
        if self.n >= self.min_instances {
            let up = self.sum_increase - self.min_increase;
            let down = self.max_decrease - self.sum_decrease;
            self.detected = up > self.threshold || down > self.threshold;
        }
        self.detected
    }
}

/// The drift detection method on a stream of errors (1.0 wrong, 0.0 right).
#[derive(Debug, Clone, PartialEq)]
pub struct Ddm {
    /// Values seen before the minimum is tracked.
    pub warm_start: usize,
    /// Standard deviations above the minimum that raise a warning.
    pub warning_threshold: f64,
    /// Standard deviations above the minimum that signal a change.
    pub drift_threshold: f64,
    n: usize,
    p: f64,
    p_min: f64,
    s_min: f64,
    ps_min: f64,
    /// Whether the last value raised a warning.
    pub warning: bool,
    detected: bool,
}

impl Default for Ddm {
    fn default() -> Self {
        Ddm::new(30, 2.0, 3.0)
    }
}

impl Ddm {
    /// A detector with these settings (river's defaults: 30, 2, 3).
    pub fn new(warm_start: usize, warning_threshold: f64, drift_threshold: f64) -> Self {
        Ddm {
            warm_start,
            warning_threshold,
            drift_threshold,
            n: 0,
            p: 0.0,
            p_min: f64::NAN,
            s_min: f64::NAN,
            ps_min: f64::INFINITY,
            warning: false,
            detected: false,
        }
    }
}

impl Detector for Ddm {
    fn update(&mut self, x: f64) -> bool {
        if self.detected {
            *self = Ddm::new(
                self.warm_start,
                self.warning_threshold,
                self.drift_threshold,
            );
        }
        self.n += 1;
        self.p += (x - self.p) / self.n as f64;
        let s = (self.p * (1.0 - self.p) / self.n as f64).sqrt();
        if self.n > self.warm_start {
            if self.p + s <= self.ps_min {
                self.p_min = self.p;
                self.s_min = s;
                self.ps_min = self.p + s;
            }
            self.warning = self.p + s > self.p_min + self.warning_threshold * self.s_min;
            if self.p + s > self.p_min + self.drift_threshold * self.s_min {
                self.detected = true;
                self.warning = false;
            }
        }
        self.detected
    }
}

/// Adaptive windowing, exact form: every split of the window is tested after each value.
#[derive(Debug, Clone, PartialEq)]
pub struct Adwin {
    /// Confidence: the bound holds with probability 1 − δ.
    pub delta: f64,
    /// Values on either side of a split, at least.
    pub min_side: usize,
    /// Longest window kept (the oldest values beyond it are dropped without a test).
    pub max_window: usize,
    /// Values between two tests of the window.
    pub clock: usize,
    window: VecDeque<f64>,
    total: f64,
    squares: f64,
    seen: usize,
}

impl Default for Adwin {
    fn default() -> Self {
        Adwin::new(0.002, 5, 10_000)
    }
}

impl Adwin {
    /// A detector with confidence `delta` (river's default 0.002).
    pub fn new(delta: f64, min_side: usize, max_window: usize) -> Self {
        Adwin {
            delta,
            min_side,
            max_window,
            clock: 32,
            window: VecDeque::new(),
            total: 0.0,
            squares: 0.0,
            seen: 0,
        }
    }

    /// Values in the current window.
    pub fn width(&self) -> usize {
        self.window.len()
    }

    /// Whether some split of the window separates means further apart than `ε_cut`:
    /// `√(2/m · σ² · ln(2/δ')) + 2/(3m) · ln(2/δ')`, with `m` the harmonic mean of the two
    /// sides' sizes, `σ²` the window's variance and `δ' = δ / ln n` (the paper's Theorem 3
    /// bound for the variance-aware test).
    fn cut(&self) -> bool {
        let n = self.window.len();
        if n < 2 * self.min_side {
            return false;
        }
        let total = self.total;
        let mean = total / n as f64;
        let variance = (self.squares / n as f64 - mean * mean).max(0.0);
        let delta_prime = self.delta / (n as f64).ln();
        let ln = (2.0 / delta_prime).ln();
        let mut older = 0.0;
        for (k, x) in self.window.iter().enumerate() {
            older += x;
            let n0 = k + 1;
            let n1 = n - n0;
            if n0 < self.min_side {
                continue;
            }
            if n1 < self.min_side {
                break;
            }
            let m = 1.0 / (1.0 / n0 as f64 + 1.0 / n1 as f64);
            let eps = (2.0 / m * variance * ln).sqrt() + 2.0 / (3.0 * m) * ln;
            let gap = (older / n0 as f64 - (total - older) / n1 as f64).abs();
            if gap > eps {
                return true;
            }
        }
        false
    }
}

impl Adwin {
    fn pop(&mut self) {
        if let Some(x) = self.window.pop_front() {
            self.total -= x;
            self.squares -= x * x;
        }
    }
}

impl Detector for Adwin {
    fn update(&mut self, x: f64) -> bool {
        self.window.push_back(x);
        self.total += x;
        self.squares += x * x;
        self.seen += 1;
        if self.window.len() > self.max_window {
            self.pop();
        }
        if !self.seen.is_multiple_of(self.clock) {
            return false;
        }
        let mut changed = false;
        while self.cut() {
            self.pop();
            changed = true;
        }
        if changed {
            // Sums kept by adding and subtracting drift; recompute them from the window.
            self.total = self.window.iter().sum();
            self.squares = self.window.iter().map(|v| v * v).sum();
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded stream: `before` values around 0, then values around `shift`.
    fn stream(before: usize, after: usize, shift: f64, bernoulli: Option<(f64, f64)>) -> Vec<f64> {
        let mut state = 11u64;
        let mut uniform = move || {
            state = autodl_artifacts::context::splitmix64(state);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..before + after)
            .map(|i| match bernoulli {
                Some((p0, p1)) => f64::from(u8::from(uniform() < if i < before { p0 } else { p1 })),
                None => {
                    let (u, v) = (uniform(), uniform());
                    let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                    z + if i >= before { shift } else { 0.0 }
                }
            })
            .collect()
    }

    #[test]
    fn each_detector_finds_an_abrupt_change_soon_after_it_and_not_before() {
        // Noise of standard deviation 0.25, then a shift of 1.0. (Page–Hinkley's threshold of
        // 50 is in the data's units: on unit-variance noise the cumulative sums wander past it
        // within a few thousand values.)
        let values: Vec<f64> = stream(2000, 1000, 4.0, None)
            .iter()
            .map(|v| v * 0.25)
            .collect();
        for (name, det) in [
            (
                "page_hinkley",
                &mut PageHinkley::default() as &mut dyn Detector,
            ),
            ("adwin", &mut Adwin::default()),
        ] {
            let found = detections(det, values.iter().copied());
            assert!(!found.is_empty(), "{name} found nothing");
            assert!(found[0] >= 2000 && found[0] < 2200, "{name}: {found:?}");
        }
        // Error rate from 10% to 40%.
        let errors = stream(2000, 1000, 0.0, Some((0.1, 0.4)));
        let found = detections(&mut Ddm::default(), errors);
        assert!(found[0] >= 2000 && found[0] < 2200, "ddm: {found:?}");
    }

    #[test]
    fn adwin_keeps_its_window_on_a_steady_stream() {
        let values = stream(3000, 0, 0.0, None);
        let mut a = Adwin::default();
        assert!(detections(&mut a, values).is_empty());
        assert_eq!(a.width(), 3000);
    }
}
