//! An independent RFC 9162 verifier for the tests, written from the RFC's definitions (the
//! recursive `MTH`, `PATH` and `SUBPROOF`) rather than from the service's code: roots are
//! computed from all leaves, and proofs are checked by rebuilding the roots they claim,
//! consuming the proof from its last (topmost) hash down.

use sha2::{Digest, Sha256};

pub type H = [u8; 32];

fn leaf(data: &[u8]) -> H {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(data)
        .finalize()
        .into()
}

fn node(l: &H, r: &H) -> H {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(l)
        .chain_update(r)
        .finalize()
        .into()
}

/// `k`: the largest power of two smaller than `n` (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// `MTH(D[n])` over leaf data (the events' chain hashes).
pub fn root(data: &[Vec<u8>]) -> H {
    match data.len() {
        0 => Sha256::digest([]).into(),
        1 => leaf(&data[0]),
        n => {
            let k = split(n);
            node(&root(&data[..k]), &root(&data[k..]))
        }
    }
}

/// Checks that `data` is leaf `m` of the tree of size `n` with `root`, given `path`.
pub fn inclusion_ok(data: &[u8], m: usize, n: usize, path: &[Vec<u8>], want: &H) -> bool {
    fn rebuild(m: usize, n: usize, leaf_hash: H, path: &mut Vec<H>) -> Option<H> {
        if n == 1 {
            return Some(leaf_hash);
        }
        let k = split(n);
        let sibling = path.pop()?;
        Some(if m < k {
            node(&rebuild(m, k, leaf_hash, path)?, &sibling)
        } else {
            node(&sibling, &rebuild(m - k, n - k, leaf_hash, path)?)
        })
    }
    if m >= n {
        return false;
    }
    let Some(mut path) = hashes(path) else {
        return false;
    };
    let got = rebuild(m, n, leaf(data), &mut path);
    path.is_empty() && got.as_ref() == Some(want)
}

/// Checks that the tree of size `m` with `old` is a prefix of the tree of size `n` with
/// `new`, given `proof`.
pub fn consistency_ok(m: usize, n: usize, old: &H, new: &H, proof: &[Vec<u8>]) -> bool {
    /// Returns (root of the old part, root of the new part) of `D[0:n]` for a first size `m`.
    fn rebuild(m: usize, n: usize, b: bool, old: &H, proof: &mut Vec<H>) -> Option<(H, H)> {
        if m == n {
            return if b {
                Some((*old, *old))
            } else {
                let h = proof.pop()?;
                Some((h, h))
            };
        }
        let k = split(n);
        let x = proof.pop()?;
        if m <= k {
            let (o, nw) = rebuild(m, k, b, old, proof)?;
            Some((o, node(&nw, &x)))
        } else {
            let (o, nw) = rebuild(m - k, n - k, false, old, proof)?;
            Some((node(&x, &o), node(&x, &nw)))
        }
    }
    if m == 0 || m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && old == new;
    }
    let Some(mut proof) = hashes(proof) else {
        return false;
    };
    let got = rebuild(m, n, true, old, &mut proof);
    proof.is_empty() && got == Some((*old, *new))
}

fn hashes(raw: &[Vec<u8>]) -> Option<Vec<H>> {
    raw.iter().map(|h| h.as_slice().try_into().ok()).collect()
}

/// A signed note opened by hand from C2SP signed-note / tlog-checkpoint: returns (origin,
/// size, root) when `verifier_key` signed it.
pub fn open_checkpoint(note: &str, verifier_key: &str) -> Option<(String, u64, H)> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let mut parts = verifier_key.splitn(3, '+');
    let (name, id_hex, key) = (parts.next()?, parts.next()?, parts.next()?);
    let key = STANDARD.decode(key).ok()?;
    if key.len() != 33 || key[0] != 1 {
        return None;
    }
    let id: H = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', 1])
        .chain_update(&key[1..])
        .finalize()
        .into();
    if hex::encode(&id[..4]) != id_hex {
        return None;
    }
    let (body, sigs) = note.split_once("\n\n")?;
    let body = format!("{body}\n");
    let line = sigs
        .lines()
        .find(|l| l.starts_with(&format!("\u{2014} {name} ")))?;
    let blob = STANDARD.decode(line.rsplit(' ').next()?).ok()?;
    if blob.len() != 68 || blob[..4] != id[..4] {
        return None;
    }
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key[1..])
        .verify(body.as_bytes(), &blob[4..])
        .ok()?;
    let lines: Vec<&str> = body.lines().collect();
    let [origin, size, root] = lines[..] else {
        return None;
    };
    let root: H = STANDARD.decode(root).ok()?.try_into().ok()?;
    if origin != name {
        return None;
    }
    Some((origin.to_owned(), size.parse().ok()?, root))
}
