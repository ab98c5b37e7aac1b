//! Opaque page tokens for the newest-first lists of requests and assumptions: base64url of
//! JSON plus a checksum, bound to the list, the account and the filter they were issued for
//! (used with others → `INVALID_ARGUMENT`), like `ListAuditEvents`' tokens.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{domain::Error, storage::page::Cursor};

/// What a token carries.
#[derive(Debug, Serialize, Deserialize)]
struct Token {
    /// Format version.
    v: u8,
    /// The list, account and filter it was issued for (a fingerprint).
    f: String,
    /// Where the next page starts.
    c: Cursor,
}

/// A fingerprint of what a token is bound to: the list, the account and its filter values.
pub fn binding(list: &str, account_id: &str, filter: &[&str]) -> String {
    let mut filter = filter.to_vec();
    filter.sort_unstable();
    filter.dedup();
    let text = format!("{list};{account_id};{}", filter.join(","));
    hex::encode(&Sha256::digest(text.as_bytes())[..12])
}

/// The token continuing after `cursor`.
pub fn encode(binding: &str, cursor: Cursor) -> String {
    let token = Token {
        v: 1,
        f: binding.to_owned(),
        c: cursor,
    };
    let json = serde_json::to_vec(&token).unwrap_or_default();
    let check = &Sha256::digest(&json)[..8];
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&json),
        URL_SAFE_NO_PAD.encode(check)
    )
}

fn invalid(reason: &str) -> Error {
    Error::invalid("page_token", reason)
}

/// The cursor of a token issued for `binding`.
pub fn decode(text: &str, binding: &str) -> Result<Cursor, Error> {
    let (body, check) = text.split_once('.').ok_or_else(|| invalid("malformed"))?;
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| invalid("malformed"))?;
    let check = URL_SAFE_NO_PAD
        .decode(check)
        .map_err(|_| invalid("malformed"))?;
    if check != Sha256::digest(&json)[..8] {
        return Err(invalid("corrupted"));
    }
    let token: Token = serde_json::from_slice(&json).map_err(|_| invalid("malformed"))?;
    if token.v != 1 {
        return Err(invalid("unsupported version"));
    }
    if token.f != binding {
        return Err(invalid(
            "issued for another account or other filters; repeat the same request",
        ));
    }
    Ok(token.c)
}

/// Cuts `rows` (read with one row more than `page_size`, newest first) to a page, and the
/// token continuing after its last row when that extra row shows there is more.
pub fn page<T>(
    mut rows: Vec<T>,
    page_size: u64,
    binding: &str,
    cursor: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() as u64 > page_size;
    rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
    let next = match (more, rows.last()) {
        (true, Some(last)) => Some(encode(binding, cursor(last))),
        _ => None,
    };
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_its_filter() {
        let cursor = Cursor {
            time_us: 7,
            id: "x".into(),
        };
        let b = binding("requests", "acme", &["PENDING"]);
        let token = encode(&b, cursor.clone());
        assert_eq!(decode(&token, &b).unwrap(), cursor);
        let other = binding("requests", "acme", &["APPROVED"]);
        assert!(matches!(
            decode(&token, &other),
            Err(Error::InvalidArgument(_))
        ));
        let mut broken = token.clone();
        broken.insert(3, 'A');
        assert!(matches!(
            decode(&broken, &b),
            Err(Error::InvalidArgument(_))
        ));
    }
}
