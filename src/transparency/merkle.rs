//! The audit log's Merkle tree, RFC 9162 §2.1: leaf hash `SHA-256(0x00 ‖ data)`, interior
//! node `SHA-256(0x01 ‖ left ‖ right)`, empty root `SHA-256("")`. A leaf's data is its
//! event's 32-byte chain hash.
//!
//! **What is stored.** Every *complete* subtree (`2^level` leaves starting at a multiple of
//! `2^level`) is kept once, keyed by [`NodeKey`]. Appending leaf `m` completes exactly the
//! subtrees that end at `m` — one per trailing one-bit of `m`, plus the leaf itself — so a
//! store keyed by `(last leaf, level)` only ever appends at its end. Any subtree the proofs
//! of RFC 9162 need is either complete (one stored node) or the right edge of a tree, which
//! is the fold of at most `log2(n)` complete ones: a proof costs O(log n) node reads
//! whatever the tree's size.
//!
//! **Two phases, one algorithm.** The proof and root functions take a node reader. Which
//! nodes they read depends only on the sizes and indexes asked for, never on hash values, so
//! storage first runs them with [`needed`] (which records the keys), fetches those nodes in
//! one query, and runs them again over the fetched map ([`with_nodes`]).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// RFC 9162 leaf hash of `data` (an event's chain hash).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// RFC 9162 interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A complete subtree: `2^level` leaves starting at leaf `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    /// Height above the leaves (0: a leaf).
    pub level: u8,
    /// Position among the subtrees of its level.
    pub index: u64,
}

impl NodeKey {
    /// The subtree's first leaf.
    pub fn first_leaf(self) -> u64 {
        self.index << self.level
    }

    /// The subtree's last leaf: the leaf whose append completed it (the storage key).
    pub fn last_leaf(self) -> u64 {
        ((self.index + 1) << self.level) - 1
    }

    /// The node at `level` whose last leaf is `last_leaf` (inverse of [`Self::last_leaf`]).
    pub fn ending_at(last_leaf: u64, level: u8) -> Self {
        Self {
            level,
            index: ((last_leaf + 1) >> level) - 1,
        }
    }
}

/// The complete subtrees a tree of `size` leaves decomposes into, largest (leftmost) first:
/// one per one-bit of `size`. Their hashes are the tree's right edge ("frontier").
pub fn frontier_keys(size: u64) -> Vec<NodeKey> {
    let mut keys = Vec::new();
    let mut start = 0_u64;
    for level in (0..64_u8).rev() {
        if size & (1 << level) != 0 {
            keys.push(NodeKey {
                level,
                index: start >> level,
            });
            start += 1 << level;
        }
    }
    keys
}

/// The root of a tree given its frontier hashes (see [`frontier_keys`]).
pub fn root_of_frontier(frontier: &[Hash]) -> Hash {
    let mut iter = frontier.iter().rev();
    match iter.next() {
        None => empty_root(),
        Some(last) => iter.fold(*last, |acc, left| node_hash(left, &acc)),
    }
}

/// Leaves appended to a tree: their indexes and every node they completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Index of the first new leaf (the size before).
    pub first_leaf: u64,
    /// Nodes to store, in completion order (so in storage-key order).
    pub nodes: Vec<(NodeKey, Hash)>,
    /// The right edge of the grown tree (see [`frontier_keys`]).
    pub frontier: Vec<Hash>,
}

/// Appends leaves (their data: event chain hashes) to a tree of `size` leaves whose frontier
/// hashes are `frontier`. Fails if the frontier does not fit the size.
pub fn append(size: u64, frontier: &[Hash], leaves: &[&[u8]]) -> Result<Appended, String> {
    let keys = frontier_keys(size);
    if keys.len() != frontier.len() {
        return Err(format!(
            "a tree of {size} leaves has {} frontier nodes, {} were given",
            keys.len(),
            frontier.len()
        ));
    }
    // The right edge as a stack of (level, hash), largest first.
    let mut edge: Vec<(u8, Hash)> = keys
        .iter()
        .map(|k| k.level)
        .zip(frontier.to_vec())
        .collect();
    let mut nodes = Vec::with_capacity(leaves.len() * 2);
    for (offset, data) in leaves.iter().enumerate() {
        let leaf = size + offset as u64;
        let mut current = (0_u8, leaf_hash(data));
        nodes.push((NodeKey::ending_at(leaf, 0), current.1));
        while let Some(&(level, left)) = edge.last() {
            if level != current.0 {
                break;
            }
            edge.pop();
            current = (level + 1, node_hash(&left, &current.1));
            nodes.push((NodeKey::ending_at(leaf, current.0), current.1));
        }
        edge.push(current);
    }
    Ok(Appended {
        first_leaf: size,
        nodes,
        frontier: edge.into_iter().map(|(_, hash)| hash).collect(),
    })
}

/// Builds a tree leaf by leaf in memory, keeping only its right edge: how a verifier
/// rebuilds the tree from event rows without trusting any stored node.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    size: u64,
    edge: Vec<(u8, Hash)>,
}

impl Builder {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf (its data) and returns its leaf hash.
    pub fn push(&mut self, data: &[u8]) -> Hash {
        let leaf = leaf_hash(data);
        let mut current = (0_u8, leaf);
        while let Some(&(level, left)) = self.edge.last() {
            if level != current.0 {
                break;
            }
            self.edge.pop();
            current = (level + 1, node_hash(&left, &current.1));
        }
        self.edge.push(current);
        self.size += 1;
        leaf
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the leaves so far.
    pub fn root(&self) -> Hash {
        let hashes: Vec<Hash> = self.edge.iter().map(|(_, h)| *h).collect();
        root_of_frontier(&hashes)
    }
}

/// Reads a stored complete subtree.
pub type Reader<'a> = &'a mut dyn FnMut(NodeKey) -> Hash;

/// `MTH(D[start:end])`; `start` is always aligned to the largest power of two below
/// `end - start` in RFC 9162's recursion, so the left part is one complete subtree.
fn subtree(start: u64, end: u64, read: Reader<'_>) -> Hash {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros() as u8;
        return read(NodeKey {
            level,
            index: start >> level,
        });
    }
    let k = largest_power_of_two_below(n);
    let left = subtree(start, start + k, read);
    let right = subtree(start + k, end, read);
    node_hash(&left, &right)
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn largest_power_of_two_below(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The root of the first `size` leaves.
pub fn root(size: u64, read: Reader<'_>) -> Hash {
    if size == 0 {
        return empty_root();
    }
    subtree(0, size, read)
}

/// RFC 9162 §2.1.3.1 `PATH(leaf, D[0:size])`, nearest the leaf first. Needs `leaf < size`.
pub fn inclusion_proof(leaf: u64, size: u64, read: Reader<'_>) -> Vec<Hash> {
    let mut proof = Vec::new();
    path(leaf, 0, size, read, &mut proof);
    proof
}

fn path(m: u64, start: u64, end: u64, read: Reader<'_>, out: &mut Vec<Hash>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = largest_power_of_two_below(n);
    if m < k {
        path(m, start, start + k, read, out);
        out.push(subtree(start + k, end, read));
    } else {
        path(m - k, start + k, end, read, out);
        out.push(subtree(start, start + k, read));
    }
}

/// RFC 9162 §2.1.4.1 `PROOF(first, D[0:second])`. Needs `0 < first <= second`; empty when
/// they are equal.
pub fn consistency_proof(first: u64, second: u64, read: Reader<'_>) -> Vec<Hash> {
    let mut proof = Vec::new();
    if first > 0 && first < second {
        subproof(first, 0, second, true, read, &mut proof);
    }
    proof
}

fn subproof(m: u64, start: u64, end: u64, b: bool, read: Reader<'_>, out: &mut Vec<Hash>) {
    let n = end - start;
    if m == n {
        if !b {
            out.push(subtree(start, end, read));
        }
        return;
    }
    let k = largest_power_of_two_below(n);
    if m <= k {
        subproof(m, start, start + k, b, read, out);
        out.push(subtree(start + k, end, read));
    } else {
        subproof(m - k, start + k, end, false, read, out);
        out.push(subtree(start, start + k, read));
    }
}

/// The nodes `run` reads (phase one: record, without any hash).
pub fn needed<T>(run: impl FnOnce(Reader<'_>) -> T) -> Vec<NodeKey> {
    let mut keys = Vec::new();
    let mut record = |key: NodeKey| {
        if !keys.contains(&key) {
            keys.push(key);
        }
        [0; 32]
    };
    run(&mut record);
    keys
}

/// Runs `run` over fetched nodes (phase two); the first node missing from `nodes` is the
/// error (the stored tree is damaged).
pub fn with_nodes<T>(
    nodes: &HashMap<NodeKey, Hash>,
    run: impl FnOnce(Reader<'_>) -> T,
) -> Result<T, NodeKey> {
    let mut missing = None;
    let mut read = |key: NodeKey| match nodes.get(&key) {
        Some(hash) => *hash,
        None => {
            missing.get_or_insert(key);
            [0; 32]
        }
    };
    let out = run(&mut read);
    match missing {
        None => Ok(out),
        Some(key) => Err(key),
    }
}

#[cfg(test)]
#[path = "merkle_tests.rs"]
mod tests;
