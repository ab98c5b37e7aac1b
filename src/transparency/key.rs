//! The checkpoint signing key: Ed25519 in a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`,
//! as `openssl genpkey -algorithm ed25519` writes it, or `accessgrant audit key generate`).
//! The key lives in a file, never in the database: whoever can rewrite the database must not
//! also be able to sign a rewritten history.

use std::{fs, io::Write, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ring::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};

const PEM_LABEL: &str = "PRIVATE KEY";

/// Why a key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 PKCS#8 PEM key.
    #[error("{path}: not an Ed25519 private key in PKCS#8 PEM ({why})")]
    Invalid {
        /// The key file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The system's random source failed.
    #[error("cannot generate a key: {0}")]
    Random(String),
}

/// An Ed25519 signing key.
#[derive(Debug)]
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A new random key and its PEM text.
    pub fn generate() -> Result<(String, Self), KeyError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| KeyError::Random(e.to_string()))?;
        let pem = to_pem(document.as_ref());
        let key = Self::from_pem(&pem, "<generated>")?;
        Ok((pem, key))
    }

    /// Parses PEM text (`origin_of_text` names it in errors).
    pub fn from_pem(text: &str, origin_of_text: &str) -> Result<Self, KeyError> {
        let invalid = |why: &str| KeyError::Invalid {
            path: origin_of_text.to_owned(),
            why: why.to_owned(),
        };
        let begin = format!("-----BEGIN {PEM_LABEL}-----");
        let end = format!("-----END {PEM_LABEL}-----");
        let start = text
            .find(&begin)
            .ok_or_else(|| invalid("no BEGIN PRIVATE KEY line"))?
            + begin.len();
        let stop = text[start..]
            .find(&end)
            .ok_or_else(|| invalid("no END PRIVATE KEY line"))?
            + start;
        let base64: String = text[start..stop].split_whitespace().collect();
        let der = B64
            .decode(base64)
            .map_err(|_| invalid("the PEM body is not base64"))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Self { pair })
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&text, &path.display().to_string())
    }

    /// Writes a new key to `path` (mode 0600, refusing to replace an existing file).
    pub fn create(path: &Path) -> Result<Self, KeyError> {
        let (pem, key) = Self::generate()?;
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        file.write_all(pem.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(key)
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Signs `message` (Ed25519 is deterministic: the same message gives the same signature,
    /// so replicas signing the same tree head write the same checkpoint).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

fn to_pem(der: &[u8]) -> String {
    let body = B64.encode(der);
    let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_private_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let key = SigningKey::create(&path).unwrap();
        assert_eq!(
            SigningKey::load(&path).unwrap().public_key(),
            key.public_key()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(matches!(
            SigningKey::create(&path),
            Err(KeyError::Io { .. })
        ));
    }

    /// A PKCS#8 v1 key (no public key inside), as OpenSSL writes it: RFC 8410 §10.3's example.
    #[test]
    fn an_openssl_style_key_loads() {
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pem(pem, "rfc8410").unwrap();
        assert_eq!(
            hex::encode(key.public_key()),
            "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
        );
    }

    #[test]
    fn garbage_is_refused_with_its_path() {
        let err = SigningKey::from_pem("hello", "/etc/k.pem").unwrap_err();
        assert!(err.to_string().contains("/etc/k.pem"), "{err}");
        let rsa_like = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(SigningKey::from_pem(rsa_like, "x").is_err());
    }
}
