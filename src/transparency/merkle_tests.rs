use std::collections::HashMap;

use super::*;
use crate::transparency::proof::{verify_consistency, verify_inclusion};

/// RFC 9162 `MTH` computed the obvious way, over leaf data.
fn naive_root(leaves: &[Vec<u8>]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = largest_power_of_two_below(n as u64) as usize;
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

fn data(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| Sha256::digest(i.to_le_bytes()).to_vec())
        .collect()
}

/// Builds a stored tree by appending in uneven batches, as the write loop does.
fn build(leaves: &[Vec<u8>]) -> HashMap<NodeKey, Hash> {
    let mut nodes = HashMap::new();
    let mut size = 0_u64;
    let mut batch = 1;
    while (size as usize) < leaves.len() {
        let end = (size as usize + batch).min(leaves.len());
        let frontier: Vec<Hash> = frontier_keys(size).iter().map(|k| nodes[k]).collect();
        let slices: Vec<&[u8]> = leaves[size as usize..end]
            .iter()
            .map(Vec::as_slice)
            .collect();
        let appended = append(size, &frontier, &slices).unwrap();
        assert_eq!(appended.first_leaf, size);
        let mut last = None;
        for (key, hash) in appended.nodes {
            // Storage keys only grow: the store appends at its end.
            let storage_key = (key.last_leaf(), key.level);
            assert!(last < Some(storage_key), "{key:?} after {last:?}");
            last = Some(storage_key);
            assert!(nodes.insert(key, hash).is_none(), "{key:?} stored twice");
        }
        size = end as u64;
        let expected: Vec<Hash> = frontier_keys(size).iter().map(|k| nodes[k]).collect();
        assert_eq!(appended.frontier, expected, "frontier after {size}");
        batch = batch % 7 + 2;
    }
    nodes
}

fn read(nodes: &HashMap<NodeKey, Hash>) -> impl FnMut(NodeKey) -> Hash + '_ {
    |key| nodes[&key]
}

#[test]
fn known_answers() {
    assert_eq!(
        hex::encode(empty_root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // RFC 9162 leaf hash of the empty string: SHA-256(0x00).
    assert_eq!(
        hex::encode(leaf_hash(b"")),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );
}

#[test]
fn stored_roots_match_the_definition_at_every_size() {
    let leaves = data(70);
    let nodes = build(&leaves);
    for size in 0..=70_u64 {
        let expected = naive_root(&leaves[..size as usize]);
        assert_eq!(root(size, &mut read(&nodes)), expected, "size {size}");
        let frontier: Vec<Hash> = frontier_keys(size).iter().map(|k| nodes[k]).collect();
        assert_eq!(root_of_frontier(&frontier), expected, "frontier of {size}");
        let mut builder = Builder::new();
        for leaf in &leaves[..size as usize] {
            builder.push(leaf);
        }
        assert_eq!(
            (builder.size(), builder.root()),
            (size, expected),
            "built {size}"
        );
    }
}

#[test]
fn every_inclusion_proof_verifies_and_a_wrong_one_does_not() {
    let leaves = data(37);
    let nodes = build(&leaves);
    for size in 1..=37_u64 {
        let root_hash = naive_root(&leaves[..size as usize]);
        for leaf in 0..size {
            let proof = inclusion_proof(leaf, size, &mut read(&nodes));
            let lh = leaf_hash(&leaves[leaf as usize]);
            assert!(
                verify_inclusion(&lh, leaf, size, &proof, &root_hash),
                "{leaf}/{size}"
            );
            assert!(!verify_inclusion(&lh, leaf ^ 1, size, &proof, &root_hash) || size == 1);
            let other = leaf_hash(b"not this leaf");
            assert!(!verify_inclusion(&other, leaf, size, &proof, &root_hash));
        }
    }
}

#[test]
fn every_consistency_proof_verifies_and_a_forked_tree_fails() {
    let leaves = data(33);
    let nodes = build(&leaves);
    let mut forked = leaves.clone();
    forked[4] = b"rewritten".to_vec();
    for second in 1..=33_u64 {
        let second_root = naive_root(&leaves[..second as usize]);
        for first in 1..=second {
            let first_root = naive_root(&leaves[..first as usize]);
            let proof = consistency_proof(first, second, &mut read(&nodes));
            assert!(
                verify_consistency(first, second, &first_root, &second_root, &proof),
                "{first}->{second}"
            );
            if first > 4 {
                let forked_root = naive_root(&forked[..first as usize]);
                assert!(!verify_consistency(
                    first,
                    second,
                    &forked_root,
                    &second_root,
                    &proof
                ));
            }
        }
    }
}

#[test]
fn proofs_read_logarithmically_many_nodes() {
    let size = 1_000_003_u64;
    for leaf in [0, 1, 500_000, size - 2, size - 1] {
        let keys = needed(|r| inclusion_proof(leaf, size, r));
        assert!(keys.len() <= 2 * 20, "{} nodes for leaf {leaf}", keys.len());
    }
    for first in [1, 7, 65_536, 999_999, size - 1] {
        let keys = needed(|r| consistency_proof(first, size, r));
        assert!(keys.len() <= 2 * 20, "{} nodes for {first}", keys.len());
    }
    assert_eq!(needed(|r| root(size, r)).len(), size.count_ones() as usize);
}

#[test]
fn two_phases_give_the_same_proof_and_name_a_missing_node() {
    let leaves = data(21);
    let nodes = build(&leaves);
    let keys = needed(|r| inclusion_proof(5, 21, r));
    let fetched: HashMap<NodeKey, Hash> = keys.iter().map(|k| (*k, nodes[k])).collect();
    let proof = with_nodes(&fetched, |r| inclusion_proof(5, 21, r)).unwrap();
    assert_eq!(proof, inclusion_proof(5, 21, &mut read(&nodes)));
    let mut short = fetched.clone();
    short.remove(&keys[0]);
    assert_eq!(
        with_nodes(&short, |r| inclusion_proof(5, 21, r)),
        Err(keys[0])
    );
}

#[test]
fn a_frontier_that_does_not_fit_the_size_is_refused() {
    assert!(append(3, &[[0; 32]], &[b"x"]).is_err());
}

#[test]
fn node_keys_round_trip_through_their_storage_key() {
    for level in 0..10_u8 {
        for index in 0..50_u64 {
            let key = NodeKey { level, index };
            assert_eq!(NodeKey::ending_at(key.last_leaf(), level), key);
            assert_eq!(key.first_leaf() + (1 << level) - 1, key.last_leaf());
        }
    }
}
