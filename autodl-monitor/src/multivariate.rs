//! Multivariate drift: changes in the joint distribution that per-column tests can miss.
//!
//! Both tests see the same encoding of the monitored columns: numbers standardised with the
//! reference's mean and standard deviation (missing as 0, the mean), categories as one-hot
//! columns of the reference's 10 most frequent values.
//!
//! - Maximum mean discrepancy with a Gaussian kernel (bandwidth: the median distance between
//!   rows, the usual heuristic), unbiased estimate of MMD², p-value from a permutation test
//!   (Gretton et al. 2012), on at most `max_rows` rows of each side.
//! - A domain classifier: logistic regression trained to tell reference rows from current
//!   ones, its area under the ROC curve by 5-fold cross-validation (0.5: indistinguishable),
//!   and the columns whose standardised weights are largest. It is linear: it sees shifts of
//!   the columns' levels and mixes, not a changed dependence between columns, which MMD sees.

use autodl_artifacts::context::splitmix64;
pub use autodl_artifacts::drift::MultivariateDrift;
use autodl_artifacts::table::{ColumnValues, RawTable};

use crate::{MonitorError, Result};

/// The encoding of rows for the multivariate tests, fitted on the reference.
struct Encoding {
    numeric: Vec<(String, f64, f64)>,
    categories: Vec<(String, Vec<String>)>,
    names: Vec<String>,
}

impl Encoding {
    fn fit(reference: &RawTable, columns: &[(&str, bool)]) -> Result<Encoding> {
        let (mut numeric, mut categories, mut names) = (Vec::new(), Vec::new(), Vec::new());
        for &(name, is_numeric) in columns {
            let col = reference
                .column(name)
                .ok_or_else(|| MonitorError::MissingColumn {
                    column: name.to_string(),
                    present: reference.names().iter().map(|s| s.to_string()).collect(),
                })?;
            if is_numeric {
                let values: Vec<f64> = numbers(&col.values).into_iter().flatten().collect();
                let n = values.len().max(1) as f64;
                let mean = values.iter().sum::<f64>() / n;
                let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
                numeric.push((name.to_string(), mean, if sd > 0.0 { sd } else { 1.0 }));
                names.push(name.to_string());
            } else {
                let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
                for r in 0..col.values.len() {
                    if let Some(l) = col.values.label(r) {
                        *counts.entry(l).or_default() += 1;
                    }
                }
                let mut top: Vec<(String, usize)> = counts.into_iter().collect();
                top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let top: Vec<String> = top.into_iter().take(10).map(|(l, _)| l).collect();
                names.extend(top.iter().map(|l| format!("{name}={l}")));
                categories.push((name.to_string(), top));
            }
        }
        Ok(Encoding {
            numeric,
            categories,
            names,
        })
    }

    /// Rows of `table` (those in `rows`) as encoded vectors.
    fn encode(&self, table: &RawTable, rows: &[usize]) -> Result<Vec<Vec<f64>>> {
        let mut out = vec![Vec::with_capacity(self.names.len()); rows.len()];
        for (name, mean, sd) in &self.numeric {
            let col = column(table, name)?;
            let values = numbers(&col.values);
            for (o, &r) in out.iter_mut().zip(rows) {
                o.push(values[r].map_or(0.0, |v| (v - mean) / sd));
            }
        }
        for (name, top) in &self.categories {
            let col = column(table, name)?;
            for (o, &r) in out.iter_mut().zip(rows) {
                let label = col.values.label(r);
                o.extend(
                    top.iter()
                        .map(|t| f64::from(u8::from(label.as_deref() == Some(t)))),
                );
            }
        }
        Ok(out)
    }
}

fn column<'a>(table: &'a RawTable, name: &str) -> Result<&'a autodl_artifacts::table::RawColumn> {
    table
        .column(name)
        .ok_or_else(|| MonitorError::MissingColumn {
            column: name.to_string(),
            present: table.names().iter().map(|s| s.to_string()).collect(),
        })
}

fn numbers(values: &ColumnValues) -> Vec<Option<f64>> {
    match values {
        ColumnValues::Numeric(v) => v.clone(),
        other => (0..other.len())
            .map(|r| {
                other
                    .label_ref(r)
                    .and_then(|s| autodl_artifacts::transform::parse_number(&s))
            })
            .collect(),
    }
}

/// `k` row indices of `0..n` drawn without replacement (all of them when `k ≥ n`).
fn sample(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in 0..k.min(n) {
        state = splitmix64(state);
        let j = i + (state % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(k.min(n));
    idx.sort_unstable();
    idx
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// Unbiased MMD² of the first `n` rows against the rest, from the kernel matrix `k`.
fn mmd2(k: &[f64], total: usize, order: &[usize], n: usize) -> f64 {
    let m = total - n;
    let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
    for a in 0..total {
        for b in 0..total {
            if a == b {
                continue;
            }
            let v = k[order[a] * total + order[b]];
            match (a < n, b < n) {
                (true, true) => xx += v,
                (false, false) => yy += v,
                _ => xy += v,
            }
        }
    }
    xx / (n * (n - 1)) as f64 + yy / (m * (m - 1)) as f64 - xy / (n * m) as f64
}

/// Logistic regression by gradient descent on standardised inputs; returns weights and bias.
fn logistic(x: &[Vec<f64>], y: &[f64], epochs: usize) -> (Vec<f64>, f64) {
    let d = x.first().map_or(0, Vec::len);
    let (mut w, mut b) = (vec![0.0; d], 0.0);
    let lr = 0.5;
    let l2 = 1e-3;
    let n = x.len() as f64;
    for _ in 0..epochs {
        let (mut gw, mut gb) = (vec![0.0; d], 0.0);
        for (row, &t) in x.iter().zip(y) {
            let z = b + row.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>();
            let err = 1.0 / (1.0 + (-z).exp()) - t;
            for (g, a) in gw.iter_mut().zip(row) {
                *g += err * a;
            }
            gb += err;
        }
        for (wi, g) in w.iter_mut().zip(&gw) {
            *wi -= lr * (g / n + l2 * *wi);
        }
        b -= lr * gb / n;
    }
    (w, b)
}

/// Area under the ROC curve of `scores` for `labels` (1 positive), ties counted half.
fn auc(scores: &[f64], labels: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] == 1.0 {
                rank_sum += rank;
            }
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l == 1.0).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Runs both tests on `columns` (name, numeric) of `reference` against `current`, using at
/// most `max_rows` rows of each and `permutations` permutations; `seed` fixes every draw.
pub fn detect_multivariate(
    reference: &RawTable,
    current: &RawTable,
    columns: &[(&str, bool)],
    max_rows: usize,
    permutations: usize,
    seed: u64,
) -> Result<MultivariateDrift> {
    if reference.n_rows() < 2 || current.n_rows() < 2 {
        return Err(MonitorError::Empty);
    }
    let enc = Encoding::fit(reference, columns)?;
    let r_rows = sample(reference.n_rows(), max_rows, splitmix64(seed));
    let c_rows = sample(current.n_rows(), max_rows, splitmix64(seed ^ 1));
    let mut x = enc.encode(reference, &r_rows)?;
    x.extend(enc.encode(current, &c_rows)?);
    let (n, total) = (r_rows.len(), r_rows.len() + c_rows.len());
    // Kernel bandwidth: median squared distance between rows (on a subsample of pairs).
    let mut d2: Vec<f64> = (0..total.min(300))
        .flat_map(|a| ((a + 1)..total.min(300)).map(move |b| (a, b)))
        .map(|(a, b)| squared_distance(&x[a], &x[b]))
        .filter(|d| *d > 0.0)
        .collect();
    d2.sort_by(f64::total_cmp);
    let sigma2 = d2.get(d2.len() / 2).copied().unwrap_or(1.0);
    let mut k = vec![0.0; total * total];
    for a in 0..total {
        for b in a..total {
            let v = (-squared_distance(&x[a], &x[b]) / (2.0 * sigma2)).exp();
            k[a * total + b] = v;
            k[b * total + a] = v;
        }
    }
    let identity: Vec<usize> = (0..total).collect();
    let observed = mmd2(&k, total, &identity, n);
    let mut state = splitmix64(seed ^ 2);
    let mut at_least = 0;
    let mut order = identity.clone();
    for _ in 0..permutations {
        for i in (1..total).rev() {
            state = splitmix64(state);
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        if mmd2(&k, total, &order, n) >= observed {
            at_least += 1;
        }
    }
    let mmd_p_value = (at_least + 1) as f64 / (permutations + 1) as f64;

    // Domain classifier, 5-fold cross-validated.
    let y: Vec<f64> = (0..total).map(|i| f64::from(u8::from(i >= n))).collect();
    let mut folds: Vec<usize> = (0..total).map(|i| i % 5).collect();
    for i in (1..total).rev() {
        state = splitmix64(state);
        folds.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let mut scores = vec![0.0; total];
    for f in 0..5 {
        let train: Vec<usize> = (0..total).filter(|&i| folds[i] != f).collect();
        let xs: Vec<Vec<f64>> = train.iter().map(|&i| x[i].clone()).collect();
        let ys: Vec<f64> = train.iter().map(|&i| y[i]).collect();
        let (w, b) = logistic(&xs, &ys, 200);
        for i in (0..total).filter(|&i| folds[i] == f) {
            scores[i] = b + x[i].iter().zip(&w).map(|(a, c)| a * c).sum::<f64>();
        }
    }
    let domain_auc = auc(&scores, &y);
    let (w, _) = logistic(&x, &y, 200);
    let mut drivers: Vec<(String, f64)> = enc.names.iter().cloned().zip(w).collect();
    drivers.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    drivers.truncate(5);
    Ok(MultivariateDrift {
        rows: [n, total - n],
        mmd2: observed,
        mmd_p_value,
        permutations,
        domain_auc,
        drivers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodl_artifacts::table::RawColumn;

    /// Two correlated columns; `flip` reverses the correlation, leaving each column's own
    /// distribution unchanged.
    fn table(rows: usize, flip: bool, seed: u64) -> RawTable {
        let mut state = seed;
        let mut normal = move || {
            state = splitmix64(state);
            let u = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            state = splitmix64(state);
            let v = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rows {
            let x = normal();
            let y = 0.9 * x + 0.3 * normal();
            a.push(Some(x));
            b.push(Some(if flip { -y } else { y }));
        }
        RawTable {
            columns: vec![
                RawColumn {
                    name: "a".into(),
                    values: ColumnValues::Numeric(a),
                },
                RawColumn {
                    name: "b".into(),
                    values: ColumnValues::Numeric(b),
                },
            ],
        }
    }

    #[test]
    fn a_changed_correlation_is_found_and_an_unchanged_one_is_not() {
        let reference = table(600, false, 1);
        let columns = [("a", true), ("b", true)];
        let same =
            detect_multivariate(&reference, &table(600, false, 2), &columns, 300, 100, 7).unwrap();
        assert!(same.mmd_p_value > 0.05, "{same:?}");
        assert!((same.domain_auc - 0.5).abs() < 0.1, "{same:?}");
        // Each column alone has the same distribution after the flip; together they do not.
        let flipped =
            detect_multivariate(&reference, &table(600, true, 3), &columns, 300, 100, 7).unwrap();
        assert!(flipped.mmd_p_value < 0.02, "{flipped:?}");
        assert_eq!(flipped.rows, [300, 300]);
        // A shift of column a by 0.7: the classifier tells the sides apart, and says why.
        let mut shifted = table(600, false, 4);
        if let ColumnValues::Numeric(v) = &mut shifted.columns[0].values {
            v.iter_mut().for_each(|x| *x = x.map(|x| x + 0.7));
        }
        let moved = detect_multivariate(&reference, &shifted, &columns, 300, 100, 7).unwrap();
        assert!(moved.domain_auc > 0.65, "{moved:?}");
        assert_eq!(moved.drivers[0].0, "a", "{moved:?}");
        assert!(auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]) == 0.75);
    }
}
