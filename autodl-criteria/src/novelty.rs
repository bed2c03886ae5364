//! Novelty as a distance between architectures: how far the found network is from the
//! conventional ones the search space starts from.
//!
//! The distance of two validated DAGs is the mean of two parts, each in [0, 1]:
//! - nodes: the edit distance between their operations in topological order (insertions and
//!   deletions cost 1; a substitution costs 1, or ½ between two operations of the same kind
//!   with different settings, such as `dense(128)` and `dense(256)`), divided by the longer
//!   sequence's length;
//! - edges: the edges as a multiset of (source kind, destination kind) pairs; the size of the
//!   symmetric difference over the total number of edges.
//!
//! 0 means the same graph of the same operations; 1, nothing in common. It is a cheap proxy
//! for graph edit distance, exact for chains.

use autodl_artifacts::arch::ArchitectureSpec;

/// An operation's kind: its label up to the first parenthesis (`dense(128)` → `dense`).
fn kind(label: &str) -> &str {
    label.split('(').next().unwrap_or(label)
}

/// An edge as (source kind, destination kind).
type Edge = (String, String);

/// The operations in topological order, and the edges sorted.
fn labels(spec: &ArchitectureSpec) -> Option<(Vec<String>, Vec<Edge>)> {
    let g = spec.validate().ok()?;
    let nodes: Vec<String> = g.order.iter().map(|&i| spec.nodes[i].op.label()).collect();
    let mut edges = Vec::new();
    for (i, ins) in g.inputs.iter().enumerate() {
        for &j in ins {
            let (src, dst) = (spec.nodes[j].op.label(), spec.nodes[i].op.label());
            edges.push((kind(&src).to_string(), kind(&dst).to_string()));
        }
    }
    edges.sort();
    Some((nodes, edges))
}

fn edit_distance(a: &[String], b: &[String]) -> f64 {
    let mut prev: Vec<f64> = (0..=b.len()).map(|j| j as f64).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![(i + 1) as f64; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            let sub = if x == y {
                0.0
            } else if kind(x) == kind(y) {
                0.5
            } else {
                1.0
            };
            cur[j + 1] = (prev[j] + sub).min(prev[j + 1] + 1.0).min(cur[j] + 1.0);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The distance between two architectures (see the module documentation); `None` if either
/// does not validate.
pub fn architecture_distance(a: &ArchitectureSpec, b: &ArchitectureSpec) -> Option<f64> {
    let (na, ea) = labels(a)?;
    let (nb, eb) = labels(b)?;
    let nodes = edit_distance(&na, &nb) / na.len().max(nb.len()).max(1) as f64;
    // Symmetric difference of two sorted multisets.
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < ea.len() && j < eb.len() {
        match ea[i].cmp(&eb[j]) {
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    let total = ea.len() + eb.len();
    let edges = if total == 0 {
        0.0
    } else {
        (total - 2 * common) as f64 / total as f64
    };
    Some((nodes + edges) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodl_artifacts::arch::Activation;

    #[test]
    fn distance_is_zero_for_the_same_graph_and_grows_with_changes() {
        let a = ArchitectureSpec::mlp(8, &[64, 32], Activation::Relu, 3);
        assert_eq!(architecture_distance(&a, &a), Some(0.0));
        // One layer wider: a half-cost substitution, the same edges.
        let wider = ArchitectureSpec::mlp(8, &[128, 32], Activation::Relu, 3);
        let d_wider = architecture_distance(&a, &wider).unwrap();
        assert!(d_wider > 0.0 && d_wider < 0.1, "{d_wider}");
        // Another activation everywhere: more nodes and edges differ.
        let tanh = ArchitectureSpec::mlp(8, &[64, 32], Activation::Tanh, 3);
        let d_tanh = architecture_distance(&a, &tanh).unwrap();
        assert!(d_tanh > d_wider, "{d_tanh} vs {d_wider}");
        // Symmetric, and at most 1.
        assert_eq!(architecture_distance(&tanh, &a), Some(d_tanh));
        let deep = ArchitectureSpec::mlp(8, &[16, 16, 16, 16, 16], Activation::Gelu, 3);
        assert!(architecture_distance(&a, &deep).unwrap() <= 1.0);
    }
}
