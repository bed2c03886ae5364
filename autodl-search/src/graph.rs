//! DAG checks with petgraph.

use std::collections::HashMap;

use autodl_artifacts::arch::{ArchitectureSpec, Op};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};

use crate::{Result, SearchError};

/// Converts the spec to a petgraph graph (node weights are indices into `spec.nodes`).
pub(crate) fn to_petgraph(spec: &ArchitectureSpec) -> Result<DiGraph<usize, ()>> {
    let mut g = DiGraph::new();
    let mut index: HashMap<_, NodeIndex> = HashMap::new();
    for (i, node) in spec.nodes.iter().enumerate() {
        if index.insert(node.id, g.add_node(i)).is_some() {
            return Err(SearchError::InvalidCandidate(format!(
                "duplicate node {}",
                node.id
            )));
        }
    }
    for e in &spec.edges {
        let (Some(&a), Some(&b)) = (index.get(&e.from), index.get(&e.to)) else {
            return Err(SearchError::InvalidCandidate(format!(
                "edge {} -> {} names a missing node",
                e.from, e.to
            )));
        };
        g.add_edge(a, b, ());
    }
    Ok(g)
}

/// Checks a candidate: acyclic, exactly one input (no predecessors) and one output (no
/// successors), every node reachable from the input and reaching the output, and the spec's
/// own shape rules.
pub fn check_dag(spec: &ArchitectureSpec) -> Result<()> {
    let g = to_petgraph(spec)?;
    if petgraph::algo::is_cyclic_directed(&g) {
        return Err(SearchError::InvalidCandidate(
            "the graph has a cycle".into(),
        ));
    }
    let sources: Vec<NodeIndex> = g.externals(Direction::Incoming).collect();
    let sinks: Vec<NodeIndex> = g.externals(Direction::Outgoing).collect();
    let (&[source], &[sink]) = (sources.as_slice(), sinks.as_slice()) else {
        return Err(SearchError::InvalidCandidate(format!(
            "expected one source and one sink, found {} and {}",
            sources.len(),
            sinks.len()
        )));
    };
    if !matches!(spec.nodes[g[source]].op, Op::Input)
        || !matches!(spec.nodes[g[sink]].op, Op::Output { .. })
    {
        return Err(SearchError::InvalidCandidate(
            "the source must be the input node and the sink the output node".into(),
        ));
    }
    let mut seen = 0;
    let mut dfs = Dfs::new(&g, source);
    while dfs.next(&g).is_some() {
        seen += 1;
    }
    let reversed = Reversed(&g);
    let mut back = 0;
    let mut dfs = Dfs::new(reversed, sink);
    while dfs.next(reversed).is_some() {
        back += 1;
    }
    if seen != g.node_count() || back != g.node_count() {
        return Err(SearchError::InvalidCandidate(
            "some node is not on a path from the input to the output".into(),
        ));
    }
    spec.validate()
        .map(|_| ())
        .map_err(|e| SearchError::InvalidCandidate(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodl_artifacts::arch::{Activation, Edge, Node, NodeId};

    #[test]
    fn accepts_an_mlp_and_rejects_broken_graphs() {
        let spec = ArchitectureSpec::mlp(3, &[4], Activation::Relu, 2);
        check_dag(&spec).unwrap();

        let mut cyclic = spec.clone();
        cyclic.edges.push(Edge {
            from: NodeId(2),
            to: NodeId(1),
        });
        assert!(
            check_dag(&cyclic)
                .unwrap_err()
                .to_string()
                .contains("cycle")
        );

        let mut dangling = spec.clone();
        dangling.nodes.push(Node {
            id: NodeId(9),
            op: Op::Dense { units: 2 },
        });
        dangling.edges.push(Edge {
            from: NodeId(0),
            to: NodeId(9),
        });
        assert!(check_dag(&dangling).is_err());
    }
}
