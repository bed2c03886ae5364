//! Statistical tests and distances: two-sample Kolmogorov–Smirnov (exact p-values up to
//! 10,000 rows a side, as scipy's `ks_2samp` chooses, the finite-n distribution beyond), chi-square
//! homogeneity (with Yates' correction for one degree of freedom, as scipy's
//! `chi2_contingency`), PSI, the Wasserstein distance, the Jensen–Shannon distance,
//! Benjamini–Hochberg adjustment, and the special functions they need.
//! `tests/scipy_oracle.rs` checks them against scipy on generated samples.

/// Two-sample Kolmogorov–Smirnov statistic D = sup |F₁ − F₂| of two **sorted** samples.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut d: f64 = 0.0;
    while i < a.len() && j < b.len() {
        // Step past every copy of the smaller value in both samples (ties move together).
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// Survival function of the Kolmogorov distribution, P(K > λ).
pub fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return 1.0;
    }
    if lambda < 1.0 {
        // P(K ≤ λ) = √(2π)/λ · Σ exp(−(2k−1)²π²/(8λ²)); converges fast for small λ.
        let s: f64 = (1..=20)
            .map(|k| {
                let t = (2 * k - 1) as f64 * std::f64::consts::PI / lambda;
                (-t * t / 8.0).exp()
            })
            .sum();
        (1.0 - (2.0 * std::f64::consts::PI).sqrt() / lambda * s).clamp(0.0, 1.0)
    } else {
        // P(K > λ) = 2 Σ (−1)^(k−1) exp(−2k²λ²); converges fast for large λ.
        let s: f64 = (1..=100)
            .map(|k| {
                let sign = if k % 2 == 1 { 1.0 } else { -1.0 };
                sign * (-2.0 * (k * k) as f64 * lambda * lambda).exp()
            })
            .sum();
        (2.0 * s).clamp(0.0, 1.0)
    }
}

/// Largest sample size (on either side) for which [`ks_2samp`] computes the exact p-value;
/// scipy's `ks_2samp(method="auto")` uses the same limit.
pub const KS_EXACT_MAX_N: usize = 10_000;

/// Two-sided two-sample KS test of sorted samples: `(D, p)`, as scipy's `ks_2samp` (method
/// "auto"): up to [`KS_EXACT_MAX_N`] rows a side the p-value is exact ([`ks_exact_sf`]);
/// beyond, it is the finite-n Kolmogorov distribution at `n = round(nm/(n+m))`
/// ([`crate::kstwo::kstwo_sf`]).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> (f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (0.0, 1.0);
    }
    let d = ks_statistic(a, b);
    let (n, m) = (a.len(), b.len());
    if n.max(m) <= KS_EXACT_MAX_N {
        // D is a multiple of 1/lcm(n, m): h/lcm, with h an integer.
        let lcm = (n / gcd(n, m)) as f64 * m as f64;
        let h = (d * lcm).round();
        return (h / lcm, ks_exact_sf(n, m, h as u64));
    }
    let en = (n as f64 * m as f64) / (n + m) as f64;
    (d, crate::kstwo::kstwo_sf(en.round() as u64, d))
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Exact `P(D ≥ h / lcm(n, m))` for two samples of sizes `n` and `m` drawn from one continuous
/// distribution: the share of the equally likely orderings of the pooled sample whose
/// lattice path from (0, 0) to (n, m) reaches `|i·m − j·n| ≥ h·gcd(n, m)`. Each step's
/// probability is hypergeometric (`(n − i)/(n + m − i − j)` for the first sample), and the
/// probability of first reaching the boundary is summed as it happens, so small p-values keep
/// their relative precision. O(n · window) time, O(m) memory.
pub fn ks_exact_sf(n: usize, m: usize, h: u64) -> f64 {
    if n == m && h > 0 {
        return ks_exact_sf_square(n, h as usize);
    }
    let (n_, m_) = (n as i64, m as i64);
    let bound = h as i64 * gcd(n, m) as i64;
    if bound == 0 {
        return 1.0;
    }
    let inside = |i: i64, j: i64| (i * m_ - j * n_).abs() < bound;
    let mut cur = vec![0.0f64; m + 1];
    let mut next = vec![0.0f64; m + 1];
    cur[0] = 1.0;
    let mut outside = 0.0f64;
    for i in 0..=n_ {
        // The points of column i inside the band: |i·m − j·n| < bound.
        let lo = ((i * m_ - bound).div_euclid(n_) + 1).max(0);
        let hi = ((i * m_ + bound + n_ - 1).div_euclid(n_) - 1).min(m_);
        for j in lo..=hi {
            let p = cur[j as usize];
            let left = (n_ - i + m_ - j) as f64;
            if p == 0.0 || left == 0.0 {
                continue;
            }
            let (px, py) = ((n_ - i) as f64 / left, (m_ - j) as f64 / left);
            if i < n_ {
                if inside(i + 1, j) {
                    next[j as usize] += p * px;
                } else {
                    outside += p * px;
                }
            }
            if j < m_ {
                if inside(i, j + 1) {
                    cur[j as usize + 1] += p * py;
                } else {
                    outside += p * py;
                }
            }
        }
        for j in lo.max(0)..=hi {
            cur[j as usize] = 0.0;
        }
        std::mem::swap(&mut cur, &mut next);
    }
    outside.clamp(0.0, 1.0)
}

/// [`ks_exact_sf`] for equal sizes, `P(D ≥ h/n)`, in closed form (scipy's
/// `_compute_prob_outside_square`): `2 Σ_k (−1)^(k−1) C(2n, n − kh) / C(2n, n)`, summed from
/// the innermost term outwards so that no term cancels another. O(n) time.
fn ks_exact_sf_square(n: usize, h: usize) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    let (n, h) = (n as f64, h as i64);
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            let kh = (k * h) as f64;
            p1 = (n - kh - j as f64) * p1 / (n + kh + j as f64 + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    (2.0 * p).clamp(0.0, 1.0)
}

/// The first Wasserstein distance between the empirical distributions of two **sorted**
/// samples: ∫ |F₁ − F₂| (scipy's `wasserstein_distance` with equal weights).
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut total = 0.0;
    // Walk the pooled values in order; between consecutive ones both CDFs are constant.
    let mut x = a[0].min(b[0]);
    loop {
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        let next = match (a.get(i), b.get(j)) {
            (Some(&u), Some(&v)) => u.min(v),
            (Some(&u), None) => u,
            (None, Some(&v)) => v,
            (None, None) => break,
        };
        total += (i as f64 / n - j as f64 / m).abs() * (next - x);
        x = next;
    }
    total
}

/// The Jensen–Shannon distance (the square root of the divergence) between two histograms
/// given as counts or weights, each normalised to sum to one; natural logarithm unless
/// `base` is given (scipy's `spatial.distance.jensenshannon`). 0 for identical shapes, at
/// most 1 in base 2.
pub fn jensen_shannon(p: &[f64], q: &[f64], base: Option<f64>) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sp <= 0.0 || sq <= 0.0 {
        return 0.0;
    }
    let rel_entr = |x: f64, y: f64| if x > 0.0 { x * (x / y).ln() } else { 0.0 };
    let mut js = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let mid = (a + b) / 2.0;
        js += rel_entr(a, mid) + rel_entr(b, mid);
    }
    if let Some(base) = base {
        js /= base.ln();
    }
    (js / 2.0).max(0.0).sqrt()
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, about 15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let series = COEF[1..]
        .iter()
        .enumerate()
        .fold(COEF[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// Regularised upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let ln_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // Series for P(a, x), then Q = 1 − P.
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        (1.0 - sum * ln_prefix.exp()).clamp(0.0, 1.0)
    } else {
        // Continued fraction for Q (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (ln_prefix.exp() * h).clamp(0.0, 1.0)
    }
}

/// Chi-square survival function with `dof` degrees of freedom.
pub fn chi2_sf(statistic: f64, dof: f64) -> f64 {
    gamma_q(dof / 2.0, statistic / 2.0)
}

/// Chi-square test of homogeneity on a 2 × k table of counts: `(statistic, p, dof)`, with
/// Yates' correction when there is one degree of freedom (scipy's `chi2_contingency`
/// default). Categories with no observations in either row are left out.
pub fn chi2_homogeneity(reference: &[f64], current: &[f64]) -> (f64, f64, usize) {
    let cols: Vec<(f64, f64)> = reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| (r, c))
        .filter(|(r, c)| r + c > 0.0)
        .collect();
    let (rt, ct): (f64, f64) = cols
        .iter()
        .fold((0.0, 0.0), |(a, b), (r, c)| (a + r, b + c));
    let total = rt + ct;
    if cols.len() < 2 || rt == 0.0 || ct == 0.0 {
        return (0.0, 1.0, 0);
    }
    let dof = cols.len() - 1;
    // Yates' continuity correction for one degree of freedom: each count moves towards its
    // expectation by 0.5, or by less if it is closer.
    let adjust = |observed: f64, expected: f64| {
        let diff = expected - observed;
        if dof == 1 {
            observed + diff.abs().min(0.5) * diff.signum()
        } else {
            observed
        }
    };
    let statistic: f64 = cols
        .iter()
        .map(|&(r, c)| {
            let col = r + c;
            let (er, ec) = (rt * col / total, ct * col / total);
            (adjust(r, er) - er).powi(2) / er + (adjust(c, ec) - ec).powi(2) / ec
        })
        .sum();
    (statistic, chi2_sf(statistic, dof as f64), dof)
}

/// Population stability index Σ (c − r)·ln(c / r) over bins given as counts; shares are
/// floored at 1e-4 so empty bins stay finite.
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    let (rt, ct): (f64, f64) = (reference.iter().sum(), current.iter().sum());
    if rt == 0.0 || ct == 0.0 {
        return 0.0;
    }
    reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let (r, c) = ((r / rt).max(1e-4), (c / ct).max(1e-4));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// Benjamini–Hochberg adjusted p-values, in the input order.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 1.0;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        adjusted[i] = running.min(1.0);
    }
    adjusted
}

/// Counts of `sorted_values` (or any values) in the bins `(-∞, e₀], (e₀, e₁], …, (eₖ, ∞)`.
pub fn bin_counts(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0.0; edges.len() + 1];
    for &v in values {
        counts[edges.partition_point(|&e| e < v)] += 1.0;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values printed by scipy 1.15.3 running tests/scipy_golden.py in this crate:
    //   scipy.special.gammaln, scipy.stats.chi2.sf, scipy.special.kolmogorov,
    //   scipy.stats.chi2_contingency(correction=False). (For small samples scipy's KS p-value
    //   uses the exact finite-n distribution, which this asymptotic test does not claim to match.)
    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn special_functions_match_scipy() {
        assert!(close(ln_gamma(0.5), 0.5723649429247, 1e-13));
        assert!(close(ln_gamma(10.0), 12.801827480081469, 1e-13));
        assert!(close(ln_gamma(123.4), 469.3360974421906, 1e-13));
        assert!(close(chi2_sf(3.84, 1.0), 0.05004352124870519, 1e-10));
        assert!(close(chi2_sf(20.0, 7.0), 0.005569683072945574, 1e-10));
        assert!(close(chi2_sf(0.5, 3.0), 0.9188914116546758, 1e-10));
        assert!(close(chi2_sf(150.0, 100.0), 0.0009039320423540184, 1e-9));
        assert!(close(kolmogorov_sf(0.5), 0.9639452436648751, 1e-10));
        assert!(close(kolmogorov_sf(1.0), 0.26999967167735456, 1e-10));
        assert!(close(kolmogorov_sf(1.36), 0.049485876755377876, 1e-10));
        assert!(close(kolmogorov_sf(2.5), 7.453306344157342e-06, 1e-9));
    }

    #[test]
    fn ks_statistic_with_ties() {
        let a = [1.0, 2.0, 2.0, 3.0];
        let b = [2.0, 3.0, 3.0, 4.0, 5.0];
        // F_a - F_b at 1: .25-0; at 2: .75-.2=.55; at 3: 1-.6=.4.
        assert!(close(ks_statistic(&a, &b), 0.55, 1e-12));
        let (d, p) = ks_2samp(&a, &a);
        assert_eq!((d, p), (0.0, 1.0));
    }

    #[test]
    fn chi2_contingency_matches_scipy() {
        let (stat, p, dof) = chi2_homogeneity(&[10.0, 20.0, 30.0], &[20.0, 20.0, 10.0]);
        assert_eq!(dof, 2);
        assert!(close(stat, 12.52777777777778, 1e-12));
        assert!(close(p, 0.0019038276076954943, 1e-9));
    }

    #[test]
    fn bh_and_psi() {
        let adj = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
        // scipy.stats.false_discovery_control([0.01, 0.04, 0.03, 0.5])
        let expected = [0.04, 0.05333333333333334, 0.05333333333333334, 0.5];
        for (a, e) in adj.iter().zip(expected) {
            assert!(close(*a, e, 1e-12), "{adj:?}");
        }
        assert_eq!(psi(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]), 0.0);
        assert!(psi(&[10.0, 10.0], &[1.0, 19.0]) > 0.5);
        assert_eq!(
            bin_counts(&[0.0, 1.0, 1.5, 5.0], &[1.0, 2.0]),
            vec![2.0, 1.0, 1.0]
        );
    }
}
