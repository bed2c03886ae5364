//! Tree-structured Parzen Estimator (Bergstra et al. 2011), univariate, with conditional
//! parameters, in the form Optuna popularised: observations are split at the best
//! `γ(n) = min(⌈0.1·n⌉, 25)`; each parameter gets a Parzen density `l` over the good and `g`
//! over the rest; of 24 draws from `l` the one with the largest `l/g` is proposed.
//!
//! This is the sampler only: it proposes values for a [`TpeSpace`] from past observations and
//! knows nothing about networks. Minimises the loss it is told.

use rand::Rng;

/// The kind and range of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamKind {
    /// A real number in `[low, high]`, on a log scale when `log` (then `low > 0`).
    Float {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Log scale.
        log: bool,
    },
    /// An integer in `[low, high]`.
    Int {
        /// Lower bound.
        low: i64,
        /// Upper bound.
        high: i64,
    },
    /// One of `choices` categories, encoded `0..choices`.
    Categorical {
        /// Number of categories.
        choices: usize,
    },
}

/// One parameter; active only when its condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Name, for reports.
    pub name: String,
    /// Kind and range.
    pub kind: ParamKind,
    /// Active only when the categorical parameter at this index (earlier in the space) has
    /// one of these values.
    pub active_when: Option<(usize, Vec<usize>)>,
}

/// The parameters, in an order where every condition refers to an earlier parameter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TpeSpace {
    /// The parameters.
    pub params: Vec<Param>,
}

/// A configuration: one value per parameter, `None` where inactive. Categorical and integer
/// values are stored as whole numbers.
pub type Config = Vec<Option<f64>>;

/// The sampler's settings (Optuna's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeSettings {
    /// Random proposals before the model is used.
    pub startup_trials: usize,
    /// Draws from `l` per proposal.
    pub ei_candidates: usize,
}

impl Default for TpeSettings {
    fn default() -> Self {
        TpeSettings {
            startup_trials: 10,
            ei_candidates: 24,
        }
    }
}

impl TpeSpace {
    fn is_active(&self, i: usize, config: &[Option<f64>]) -> bool {
        match &self.params[i].active_when {
            None => true,
            Some((parent, allowed)) => config
                .get(*parent)
                .copied()
                .flatten()
                .is_some_and(|v| allowed.contains(&(v as usize))),
        }
    }

    /// A uniform random configuration.
    pub fn sample_random(&self, rng: &mut impl Rng) -> Config {
        let mut config: Config = Vec::with_capacity(self.params.len());
        for (i, p) in self.params.iter().enumerate() {
            let value = self
                .is_active(i, &config)
                .then(|| uniform_value(&p.kind, rng));
            config.push(value);
        }
        config
    }

    /// Proposes the next configuration from `history` (configurations with their losses; lower
    /// is better; non-finite losses count as the worst).
    pub fn suggest(
        &self,
        history: &[(Config, f64)],
        settings: TpeSettings,
        rng: &mut impl Rng,
    ) -> Config {
        if history.len() < settings.startup_trials {
            return self.sample_random(rng);
        }
        let mut order: Vec<usize> = (0..history.len()).collect();
        let loss = |k: usize| {
            let l = history[k].1;
            if l.is_finite() { l } else { f64::INFINITY }
        };
        order.sort_by(|&a, &b| loss(a).total_cmp(&loss(b)));
        let n_below = history.len().div_ceil(10).clamp(1, 25);
        let (below, above) = order.split_at(n_below);
        let mut config: Config = Vec::with_capacity(self.params.len());
        for (i, p) in self.params.iter().enumerate() {
            if !self.is_active(i, &config) {
                config.push(None);
                continue;
            }
            let values = |set: &[usize]| -> Vec<f64> {
                set.iter()
                    .filter_map(|&k| history[k].0.get(i).copied().flatten())
                    .collect()
            };
            let (good, bad) = (values(below), values(above));
            let value = match p.kind {
                ParamKind::Categorical { choices } => {
                    let l = categorical_weights(&good, choices);
                    let g = categorical_weights(&bad, choices);
                    (0..settings.ei_candidates)
                        .map(|_| draw_categorical(&l, rng))
                        .max_by(|&a, &b| (l[a] / g[a]).total_cmp(&(l[b] / g[b])))
                        .unwrap_or(0) as f64
                }
                ParamKind::Float { low, high, log } => {
                    let (lo, hi, to, from) = transform(low, high, log);
                    let l = Parzen::fit(&good.iter().map(|&v| to(v)).collect::<Vec<_>>(), lo, hi);
                    let g = Parzen::fit(&bad.iter().map(|&v| to(v)).collect::<Vec<_>>(), lo, hi);
                    from(best_ratio(&l, &g, settings.ei_candidates, rng)).clamp(low, high)
                }
                ParamKind::Int { low, high } => {
                    // Integers as reals widened by half a step each side, then rounded.
                    let (lo, hi) = (low as f64 - 0.5, high as f64 + 0.5);
                    let l = Parzen::fit(&good, lo, hi);
                    let g = Parzen::fit(&bad, lo, hi);
                    best_ratio(&l, &g, settings.ei_candidates, rng)
                        .round()
                        .clamp(low as f64, high as f64)
                }
            };
            config.push(Some(value));
        }
        config
    }
}

type Map = fn(f64) -> f64;

/// The working scale of a float parameter: bounds and the maps to and from it.
fn transform(low: f64, high: f64, log: bool) -> (f64, f64, Map, Map) {
    if log {
        (low.ln(), high.ln(), f64::ln, f64::exp)
    } else {
        (low, high, |v| v, |v| v)
    }
}

fn uniform_value(kind: &ParamKind, rng: &mut impl Rng) -> f64 {
    match *kind {
        ParamKind::Float { low, high, log } => {
            let (lo, hi, _, from) = transform(low, high, log);
            from(rng.random_range(lo..=hi)).clamp(low, high)
        }
        ParamKind::Int { low, high } => rng.random_range(low..=high) as f64,
        ParamKind::Categorical { choices } => rng.random_range(0..choices) as f64,
    }
}

/// Category frequencies with a prior of one observation spread evenly.
fn categorical_weights(values: &[f64], choices: usize) -> Vec<f64> {
    let mut w = vec![1.0 / choices as f64; choices];
    for &v in values {
        w[(v as usize).min(choices - 1)] += 1.0;
    }
    let total: f64 = w.iter().sum();
    w.iter().map(|x| x / total).collect()
}

fn draw_categorical(weights: &[f64], rng: &mut impl Rng) -> usize {
    let mut u = rng.random_range(0.0..1.0);
    for (k, &w) in weights.iter().enumerate() {
        if u < w {
            return k;
        }
        u -= w;
    }
    weights.len() - 1
}

/// A mixture of Gaussians truncated to `[low, high]`: one per observation plus a broad prior
/// centred on the interval, equally weighted; bandwidths from the gaps to the neighbours,
/// clipped to `[range / min(100, n + 1), range]`.
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    low: f64,
    high: f64,
}

impl Parzen {
    fn fit(points: &[f64], low: f64, high: f64) -> Parzen {
        let range = high - low;
        let mut mus: Vec<f64> = points.to_vec();
        mus.push(0.5 * (low + high));
        let mut sorted: Vec<(f64, usize)> = mus.iter().copied().zip(0..).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = mus.len();
        let min_sigma = range / (n as f64 + 1.0).min(100.0);
        let mut sigmas = vec![range; n];
        for (pos, &(mu, k)) in sorted.iter().enumerate() {
            if k == n - 1 {
                continue; // the prior keeps the whole range
            }
            let left = if pos == 0 {
                mu - low
            } else {
                mu - sorted[pos - 1].0
            };
            let right = if pos + 1 == n {
                high - mu
            } else {
                sorted[pos + 1].0 - mu
            };
            sigmas[k] = left.max(right).clamp(min_sigma, range);
        }
        Parzen {
            mus,
            sigmas,
            low,
            high,
        }
    }

    fn sample(&self, rng: &mut impl Rng) -> f64 {
        let k = rng.random_range(0..self.mus.len());
        for _ in 0..100 {
            // Box–Muller; rejection keeps the draw inside the bounds.
            let (u1, u2): (f64, f64) = (
                rng.random_range(f64::EPSILON..1.0),
                rng.random_range(0.0..1.0),
            );
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let x = self.mus[k] + self.sigmas[k] * z;
            if (self.low..=self.high).contains(&x) {
                return x;
            }
        }
        self.mus[k].clamp(self.low, self.high)
    }

    fn log_density(&self, x: f64) -> f64 {
        let n = self.mus.len() as f64;
        let total: f64 = self
            .mus
            .iter()
            .zip(&self.sigmas)
            .map(|(&mu, &s)| {
                let mass = normal_cdf((self.high - mu) / s) - normal_cdf((self.low - mu) / s);
                let z = (x - mu) / s;
                (-0.5 * z * z).exp() / (s * (std::f64::consts::TAU).sqrt() * mass.max(1e-12))
            })
            .sum();
        (total / n).max(f64::MIN_POSITIVE).ln()
    }
}

fn best_ratio(l: &Parzen, g: &Parzen, candidates: usize, rng: &mut impl Rng) -> f64 {
    (0..candidates.max(1))
        .map(|_| l.sample(rng))
        .map(|x| (x, l.log_density(x) - g.log_density(x)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(x, _)| x)
        .expect("at least one candidate")
}

/// Φ(z) via erfc, accurate to about 1e-7 (Numerical Recipes' erfc approximation).
fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = t
        * (-x * x - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398
                                    + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    let erfc = if x >= 0.0 { y } else { 2.0 - y };
    0.5 * erfc
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn float(name: &str, low: f64, high: f64) -> Param {
        Param {
            name: name.into(),
            kind: ParamKind::Float {
                low,
                high,
                log: false,
            },
            active_when: None,
        }
    }

    /// Branin on [-5, 10] × [0, 15]; minimum 0.397887.
    fn branin(c: &Config) -> f64 {
        let (x, y) = (c[0].unwrap(), c[1].unwrap());
        let pi = std::f64::consts::PI;
        let (a, b, cc, r, s, t) = (
            1.0,
            5.1 / (4.0 * pi * pi),
            5.0 / pi,
            6.0,
            10.0,
            1.0 / (8.0 * pi),
        );
        a * (y - b * x * x + cc * x - r).powi(2) + s * (1.0 - t) * x.cos() + s
    }

    /// Hartmann-6 on [0, 1]^6; minimum −3.32237.
    fn hartmann6(c: &Config) -> f64 {
        const A: [[f64; 6]; 4] = [
            [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
            [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
            [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
            [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
        ];
        const P: [[f64; 6]; 4] = [
            [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
            [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
            [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
            [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
        ];
        const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
        -(0..4)
            .map(|i| {
                let inner: f64 = (0..6)
                    .map(|j| A[i][j] * (c[j].unwrap() - P[i][j]).powi(2))
                    .sum();
                ALPHA[i] * (-inner).exp()
            })
            .sum::<f64>()
    }

    /// The best loss after `trials` evaluations, with TPE or random proposals.
    fn best(space: &TpeSpace, f: fn(&Config) -> f64, trials: usize, seed: u64, tpe: bool) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut history: Vec<(Config, f64)> = Vec::new();
        for _ in 0..trials {
            let c = if tpe {
                space.suggest(&history, TpeSettings::default(), &mut rng)
            } else {
                space.sample_random(&mut rng)
            };
            let loss = f(&c);
            history.push((c, loss));
        }
        history.iter().map(|h| h.1).fold(f64::INFINITY, f64::min)
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    fn tpe_beats_random_search_on_branin_and_hartmann6() {
        let branin_space = TpeSpace {
            params: vec![float("x", -5.0, 10.0), float("y", 0.0, 15.0)],
        };
        let hartmann_space = TpeSpace {
            params: (0..6).map(|i| float(&format!("x{i}"), 0.0, 1.0)).collect(),
        };
        for (space, f, optimum) in [
            (&branin_space, branin as fn(&Config) -> f64, 0.397887),
            (&hartmann_space, hartmann6 as fn(&Config) -> f64, -3.32237),
        ] {
            let regret = |tpe: bool| {
                median(
                    (0..15)
                        .map(|seed| best(space, f, 80, seed, tpe) - optimum)
                        .collect(),
                )
            };
            let (tpe, random) = (regret(true), regret(false));
            eprintln!(
                "median regret after 80 trials over 15 seeds: TPE {tpe:.4}, random {random:.4}"
            );
            assert!(tpe >= -1e-9 && random >= -1e-9);
            assert!(
                tpe < 0.5 * random,
                "median regret after 80: TPE {tpe}, random {random}"
            );
        }
    }

    #[test]
    fn conditional_parameters_are_sampled_only_when_active() {
        // An optimiser choice; momentum exists only for SGD (category 1).
        let space = TpeSpace {
            params: vec![
                Param {
                    name: "optimizer".into(),
                    kind: ParamKind::Categorical { choices: 3 },
                    active_when: None,
                },
                Param {
                    name: "momentum".into(),
                    kind: ParamKind::Float {
                        low: 0.5,
                        high: 0.99,
                        log: false,
                    },
                    active_when: Some((0, vec![1])),
                },
                Param {
                    name: "lr".into(),
                    kind: ParamKind::Float {
                        low: 1e-4,
                        high: 1e-1,
                        log: true,
                    },
                    active_when: None,
                },
                Param {
                    name: "layers".into(),
                    kind: ParamKind::Int { low: 1, high: 4 },
                    active_when: None,
                },
            ],
        };
        // Loss: SGD with momentum near 0.9, lr near 1e-2, 3 layers is best.
        let f = |c: &Config| -> f64 {
            let opt = c[0].unwrap() as usize;
            let m = if opt == 1 {
                (c[1].unwrap() - 0.9).abs()
            } else {
                1.0
            };
            m + (c[2].unwrap().log10() + 2.0).abs() + (c[3].unwrap() - 3.0).abs() * 0.3
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut history: Vec<(Config, f64)> = Vec::new();
        for _ in 0..60 {
            let c = space.suggest(&history, TpeSettings::default(), &mut rng);
            assert_eq!(c[1].is_some(), c[0] == Some(1.0), "{c:?}");
            assert!((1e-4..=1e-1).contains(&c[2].unwrap()));
            assert_eq!(c[3].unwrap().fract(), 0.0);
            let loss = f(&c);
            history.push((c, loss));
        }
        let late_sgd = history[40..].iter().filter(|h| h.0[0] == Some(1.0)).count();
        assert!(
            late_sgd >= 12,
            "TPE should settle on SGD: {late_sgd} of the last 20"
        );
    }

    #[test]
    fn the_normal_cdf_is_accurate() {
        // Values from scipy.stats.norm.cdf.
        for (z, p) in [
            (0.0, 0.5),
            (1.0, 0.8413447460685429),
            (-2.5, 0.006209665325776132),
        ] {
            assert!((normal_cdf(z) - p).abs() < 1e-7, "{z}: {}", normal_cdf(z));
        }
    }
}
