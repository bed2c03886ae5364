//! Performance of a binary classifier without labels, in the manner of NannyML's CBPE
//! (confidence-based performance estimation), and realised performance once labels arrive.
//!
//! The model's probability of the positive class is calibrated on reference rows whose labels
//! are known (isotonic regression by pool-adjacent-violators, linear between block ends,
//! clipped beyond them, as scikit-learn's `IsotonicRegression(out_of_bounds="clip")`). If the
//! calibrated probabilities are right, a row predicted positive is correct with probability
//! `p` and a row predicted negative with `1 − p`, so the expected accuracy of a chunk is the
//! mean of those; it needs no labels from the chunk.

/// A monotone map from scores to calibrated probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct IsotonicCalibration {
    /// Knots: increasing scores and the calibrated probability at each.
    xs: Vec<f64>,
    ys: Vec<f64>,
}

impl IsotonicCalibration {
    /// Fits the calibration on `scores` and their 0/1 `labels`. Equal scores are pooled
    /// first; then adjacent blocks that violate monotonicity are merged (weighted means).
    /// With no rows it is the identity.
    pub fn fit(scores: &[f64], labels: &[bool]) -> Self {
        let mut pairs: Vec<(f64, f64)> = scores
            .iter()
            .zip(labels)
            .filter(|(s, _)| s.is_finite())
            .map(|(&s, &l)| (s, f64::from(u8::from(l))))
            .collect();
        if pairs.is_empty() {
            return IsotonicCalibration {
                xs: vec![0.0, 1.0],
                ys: vec![0.0, 1.0],
            };
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Equal scores pooled first: (score, sum of labels, weight).
        let mut groups: Vec<(f64, f64, f64)> = Vec::new();
        for (s, y) in pairs {
            match groups.last_mut() {
                Some(g) if g.0 == s => {
                    g.1 += y;
                    g.2 += 1.0;
                }
                _ => groups.push((s, y, 1.0)),
            }
        }
        // Then pool adjacent violators: blocks (first score, last score, sum, weight).
        let mut blocks: Vec<(f64, f64, f64, f64)> = Vec::new();
        for (s, sum, w) in groups {
            blocks.push((s, s, sum, w));
            while blocks.len() > 1 {
                let n = blocks.len();
                let (a, b) = (blocks[n - 2], blocks[n - 1]);
                if a.2 / a.3 <= b.2 / b.3 {
                    break;
                }
                blocks[n - 2] = (a.0, b.1, a.2 + b.2, a.3 + b.3);
                blocks.pop();
            }
        }
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for (lo, hi, sum, w) in blocks {
            let v = sum / w;
            xs.push(lo);
            ys.push(v);
            if hi > lo {
                xs.push(hi);
                ys.push(v);
            }
        }
        IsotonicCalibration { xs, ys }
    }

    /// The calibrated probability of `score`: linear between knots, clipped beyond them.
    pub fn apply(&self, score: f64) -> f64 {
        let (xs, ys) = (&self.xs, &self.ys);
        if score <= xs[0] {
            return ys[0];
        }
        if score >= xs[xs.len() - 1] {
            return ys[ys.len() - 1];
        }
        let k = xs.partition_point(|&x| x <= score);
        let (x0, x1, y0, y1) = (xs[k - 1], xs[k], ys[k - 1], ys[k]);
        if x1 == x0 {
            y1
        } else {
            y0 + (y1 - y0) * (score - x0) / (x1 - x0)
        }
    }
}

/// Expected accuracy of the hard predictions `predicted` given calibrated probabilities `p`
/// of the positive class: the mean of `p` where positive is predicted and `1 − p` elsewhere.
pub fn expected_accuracy(p: &[f64], predicted: &[bool]) -> f64 {
    if p.is_empty() {
        return f64::NAN;
    }
    p.iter()
        .zip(predicted)
        .map(|(&p, &yes)| if yes { p } else { 1.0 - p })
        .sum::<f64>()
        / p.len() as f64
}

/// Share of `predicted` equal to `labels` over the rows where the label is known.
pub fn realised_accuracy(predicted: &[bool], labels: &[Option<bool>]) -> (Option<f64>, usize) {
    let known: Vec<(bool, bool)> = predicted
        .iter()
        .zip(labels)
        .filter_map(|(&p, l)| l.map(|l| (p, l)))
        .collect();
    if known.is_empty() {
        return (None, 0);
    }
    let right = known.iter().filter(|(p, l)| p == l).count();
    (Some(right as f64 / known.len() as f64), known.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_violators_and_interpolates() {
        // Scores 0.1..0.4 with labels 0, 1, 0, 1: the middle pair violates and is pooled.
        let c = IsotonicCalibration::fit(&[0.1, 0.2, 0.3, 0.4], &[false, true, false, true]);
        assert_eq!(c.apply(0.1), 0.0);
        assert_eq!(c.apply(0.25), 0.5);
        assert_eq!(c.apply(0.4), 1.0);
        assert_eq!(c.apply(0.0), 0.0);
        assert_eq!(c.apply(0.9), 1.0);
        // Linear between the knots 0.1 (0.0) and 0.2 (0.5).
        assert!((c.apply(0.15) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn ties_are_pooled_before_violators_are_merged() {
        // Score 0.0: labels 0, 1 (mean 0.5); score 0.5: labels 0, 1, 1, 1 (mean 0.75). Seen
        // one row at a time, the first 0.5 row (label 0) would wrongly merge with 0.0.
        let c = IsotonicCalibration::fit(
            &[0.0, 0.0, 0.5, 0.5, 0.5, 0.5],
            &[false, true, false, true, true, true],
        );
        assert_eq!(c.apply(0.0), 0.5);
        assert_eq!(c.apply(0.5), 0.75);
    }

    #[test]
    fn a_calibrated_model_estimates_its_accuracy() {
        // Probabilities that are right on average: each row is positive with probability p.
        let mut state = 9u64;
        let mut uniform = || {
            state = autodl_artifacts::context::splitmix64(state);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let p: Vec<f64> = (0..20_000).map(|_| uniform()).collect();
        let labels: Vec<Option<bool>> = p.iter().map(|&p| Some(uniform() < p)).collect();
        let predicted: Vec<bool> = p.iter().map(|&p| p >= 0.5).collect();
        let estimate = expected_accuracy(&p, &predicted);
        let (realised, n) = realised_accuracy(&predicted, &labels);
        assert_eq!(n, 20_000);
        // Both are near 0.75 (the mean of max(p, 1 − p) for uniform p).
        assert!((estimate - 0.75).abs() < 0.01, "{estimate}");
        assert!(
            (realised.unwrap() - estimate).abs() < 0.015,
            "{realised:?} vs {estimate}"
        );
    }
}
