//! Checkpoints as C2SP `tlog-checkpoint` bodies inside C2SP `signed-note`s, Ed25519
//! (signature type 0x01), so that any signed-note tool (Go's `sumdb/note`, witnesses)
//! verifies what this service signs:
//!
//! ```text
//! <origin>\n<tree size>\n<base64 root>\n\n— <key name> <base64(key id ‖ signature)>\n
//! ```
//!
//! The key name is the origin; the key id is the first 4 bytes of
//! `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)`; the verifier key string is
//! `<name>+<key id, 8 hex>+<base64(0x01 ‖ public key)>`. No extension lines.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ring::signature::{ED25519, UnparsedPublicKey};
use sha2::{Digest, Sha256};

use super::{key::SigningKey, merkle::Hash};

/// The signature algorithm byte of Ed25519 in signed notes.
const ED25519_TYPE: u8 = 0x01;
/// What starts a signature line: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// True for a usable signed-note key name (and so origin): 1–255 bytes, no '+' (it separates
/// the verifier key's parts), no whitespace or control characters (they separate the note's
/// lines and fields).
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.contains('+')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A tree head: what a checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (first line).
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The signed body: three lines, each ending in a newline.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a body of exactly three lines.
    fn parse_body(body: &str) -> Result<Self, NoteError> {
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .ok_or(NoteError::Malformed("the body must end with a newline"))?
            .split('\n')
            .collect();
        let [origin, size, root] = lines[..] else {
            return Err(NoteError::Malformed(
                "the body must be exactly origin, size and root",
            ));
        };
        if origin.is_empty() {
            return Err(NoteError::Malformed("empty origin"));
        }
        let size: u64 = size
            .parse()
            .ok()
            .filter(|_| size == "0" || !size.starts_with('0'))
            .ok_or(NoteError::Malformed("the size is not a decimal number"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::Malformed("the root is not 32 bytes of base64"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Signs this checkpoint, giving the whole note text.
    pub fn sign(&self, key: &SigningKey) -> String {
        let body = self.body();
        let verifier = VerifierKey::new(&self.origin, key.public_key());
        let mut blob = verifier.id.to_vec();
        blob.extend_from_slice(&key.sign(body.as_bytes()));
        format!(
            "{body}\n{SIGNATURE_PREFIX}{} {}\n",
            self.origin,
            B64.encode(blob)
        )
    }
}

/// Why a note was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Not a checkpoint note at all.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// No signature line by this verifier key.
    #[error("no signature by key {0}")]
    NotSignedBy(String),
    /// A signature line by this key that does not verify.
    #[error("the signature by key {0} does not verify")]
    BadSignature(String),
    /// Signed, but for another log.
    #[error("the checkpoint's origin {found:?} is not the key's name {expected:?}")]
    WrongOrigin {
        /// The key's name.
        expected: String,
        /// The checkpoint's first line.
        found: String,
    },
}

/// Opens a signed note: checks `verifier`'s signature over its body and parses the body.
pub fn open(note: &str, verifier: &VerifierKey) -> Result<Checkpoint, NoteError> {
    let split = note
        .find("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (body, signatures) = (&note[..=split], &note[split + 2..]);
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(NoteError::Malformed("no signature lines"));
    }
    let mut found = false;
    for line in signatures
        .strip_suffix('\n')
        .unwrap_or(signatures)
        .split('\n')
    {
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(NoteError::Malformed(
                "a signature line must start with '— '",
            ))?;
        let (name, blob) = rest.split_once(' ').ok_or(NoteError::Malformed(
            "a signature line needs a name and a signature",
        ))?;
        let blob = B64
            .decode(blob)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if name != verifier.name || blob.len() < 4 || blob[..4] != verifier.id {
            continue;
        }
        found = true;
        UnparsedPublicKey::new(&ED25519, verifier.public)
            .verify(body.as_bytes(), &blob[4..])
            .map_err(|_| NoteError::BadSignature(verifier.to_string()))?;
    }
    if !found {
        return Err(NoteError::NotSignedBy(verifier.to_string()));
    }
    let checkpoint = Checkpoint::parse_body(body)?;
    if checkpoint.origin != verifier.name {
        return Err(NoteError::WrongOrigin {
            expected: verifier.name.clone(),
            found: checkpoint.origin,
        });
    }
    Ok(checkpoint)
}

/// A signed-note verifier key: a name, a key id and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    /// The key name (this log's origin).
    pub name: String,
    /// First 4 bytes of `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)`.
    pub id: [u8; 4],
    /// The Ed25519 public key.
    pub public: [u8; 32],
}

impl VerifierKey {
    /// The verifier key of `public` under `name`.
    pub fn new(name: &str, public: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update([b'\n', ED25519_TYPE]);
        h.update(public);
        let digest = h.finalize();
        Self {
            name: name.to_owned(),
            id: [digest[0], digest[1], digest[2], digest[3]],
            public,
        }
    }

    /// Parses `<name>+<8 hex>+<base64(0x01 ‖ key)>`, checking the key id.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        // Names hold no '+'; base64 may.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Malformed("a verifier key is name+id+key"));
        };
        let key = B64
            .decode(key)
            .map_err(|_| NoteError::Malformed("the verifier key is not base64"))?;
        let public: [u8; 32] = match key.split_first() {
            Some((&ED25519_TYPE, rest)) => rest
                .try_into()
                .map_err(|_| NoteError::Malformed("an Ed25519 key is 32 bytes"))?,
            _ => return Err(NoteError::Malformed("not an Ed25519 (0x01) verifier key")),
        };
        let parsed = Self::new(name, public);
        if hex::encode(parsed.id) != id {
            return Err(NoteError::Malformed(
                "the key id does not match the name and key",
            ));
        }
        Ok(parsed)
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![ED25519_TYPE];
        key.extend_from_slice(&self.public);
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.id),
            B64.encode(key)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint {
            origin: "accessgrant/audit".into(),
            size,
            root: [7; 32],
        }
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_verifier_key() {
        let key = SigningKey::generate().unwrap().1;
        let note = checkpoint(42).sign(&key);
        assert!(note.starts_with("accessgrant/audit\n42\nBwcH"), "{note}");
        assert!(note.contains("\n\n\u{2014} accessgrant/audit "), "{note}");
        let verifier = VerifierKey::new("accessgrant/audit", key.public_key());
        assert_eq!(open(&note, &verifier).unwrap(), checkpoint(42));
        let parsed = VerifierKey::parse(&verifier.to_string()).unwrap();
        assert_eq!(parsed, verifier);
    }

    #[test]
    fn tampering_or_another_key_is_refused() {
        let key = SigningKey::generate().unwrap().1;
        let verifier = VerifierKey::new("accessgrant/audit", key.public_key());
        let note = checkpoint(42).sign(&key);
        let edited = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(
            open(&edited, &verifier),
            Err(NoteError::BadSignature(verifier.to_string()))
        );
        let other = SigningKey::generate().unwrap().1;
        let other = VerifierKey::new("accessgrant/audit", other.public_key());
        assert!(matches!(
            open(&note, &other),
            Err(NoteError::NotSignedBy(_))
        ));
        let renamed = VerifierKey::new("other/log", key.public_key());
        assert!(matches!(
            open(&note, &renamed),
            Err(NoteError::NotSignedBy(_))
        ));
        assert!(VerifierKey::parse("x+00000000+AQ==").is_err());
        let mut wrong_id = verifier.to_string();
        wrong_id.replace_range(verifier.name.len() + 1..verifier.name.len() + 9, "00000000");
        assert!(VerifierKey::parse(&wrong_id).is_err());
    }

    /// The worked example of docs/audit-log.md, byte for byte: three leaves whose data are
    /// SHA-256("event-0"), ("event-1"), ("event-2"), signed with RFC 8410's example key.
    #[test]
    fn the_documented_example_is_exact() {
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pem(pem, "rfc8410").unwrap();
        let mut tree = crate::transparency::merkle::Builder::new();
        for i in 0..3 {
            tree.push(&Sha256::digest(format!("event-{i}")));
        }
        let note = Checkpoint {
            origin: "accessgrant/audit".into(),
            size: 3,
            root: tree.root(),
        }
        .sign(&key);
        assert_eq!(
            note,
            "accessgrant/audit\n3\niJx7C2AbQKEX/YVr4aIqBFtuUhuPHgjI572PBkb77XI=\n\n\
             \u{2014} accessgrant/audit TcoUa/VpVZ9LpVx/UCjqOZwbB5DBy0bDUhrpsuOMBK0tNKGwRy+ccpEMChPTmfshG99AfVB7l6dcqtzs5LLni1uzVAE=\n"
        );
        assert_eq!(
            VerifierKey::new("accessgrant/audit", key.public_key()).to_string(),
            "accessgrant/audit+4dca146b+ARm/RAlphM3+hUG6wWfcO5bIUIaqMLa2ywxcOK1wMWbh"
        );
    }

    #[test]
    fn bodies_with_extra_lines_or_bad_numbers_are_malformed() {
        for body in [
            "o\n1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\next\n",
            "o\n01\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "o\n-1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "o\n1\nBwcH\n",
            "o\n1\n",
        ] {
            assert!(Checkpoint::parse_body(body).is_err(), "{body:?}");
        }
    }
}
