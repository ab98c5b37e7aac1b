//! `[[principals]]` → auth's principals.

use std::collections::BTreeSet;

use super::{ConfigError, file::FilePrincipal};
use crate::{
    auth::{Principal, token},
    connections::TlsSettings,
    domain::{ids::is_invisible, permission::Permission},
};

/// The principals, each able to authenticate, none sharing a name, token or certificate
/// identity; a `cert_subject` needs `[tls] client_ca` to be checked against.
pub(super) fn principals(
    entries: Vec<FilePrincipal>,
    tls: Option<&TlsSettings>,
) -> Result<Vec<Principal>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: "principals",
        reason,
    };
    let mut out: Vec<Principal> = Vec::with_capacity(entries.len());
    for entry in entries {
        let name = entry.name.trim().to_owned();
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(invalid(format!(
                "principal name {:?} must be 1..128 printable characters",
                entry.name
            )));
        }
        if out.iter().any(|p| p.name == name) {
            return Err(invalid(format!("principal {name:?} is defined twice")));
        }
        let token_sha256 = match entry.token_sha256 {
            None => None,
            Some(hex) => Some(token::parse_sha256_hex(&hex).ok_or_else(|| {
                invalid(format!(
                    "principal {name:?}: token_sha256 must be 64 hex digits (use `accessgrant token hash`)"
                ))
            })?),
        };
        if let Some(hash) = &token_sha256
            && out.iter().any(|p| p.token_sha256.as_ref() == Some(hash))
        {
            return Err(invalid(format!(
                "principal {name:?} reuses another principal's token"
            )));
        }
        if let Some(subject) = &entry.cert_subject {
            if tls.and_then(|t| t.client_ca.as_ref()).is_none() {
                return Err(invalid(format!(
                    "principal {name:?} has cert_subject {subject:?} but [tls] client_ca is not set"
                )));
            }
            if subject.trim().is_empty() {
                return Err(invalid(format!("principal {name:?}: empty cert_subject")));
            }
            // Compared literally with a certificate's names, so anything that can never
            // equal one would silently lock the principal out.
            if subject.trim() != subject
                || subject.starts_with('.')
                || subject.ends_with('.')
                || subject.contains("..")
                || subject.contains('*')
                || subject.chars().any(|c| c.is_control() || is_invisible(c))
            {
                return Err(invalid(format!(
                    "principal {name:?}: cert_subject {subject:?} can never match a certificate \
                     (no surrounding spaces, wildcards, empty labels, leading or trailing dot, \
                     or invisible characters: it is compared with the certificate's DNS names \
                     literally, ignoring case)"
                )));
            }
            if out.iter().any(|p| {
                p.cert_subject
                    .as_ref()
                    .is_some_and(|other| other.eq_ignore_ascii_case(subject))
            }) {
                return Err(invalid(format!(
                    "principal {name:?} reuses another principal's cert_subject {subject:?}"
                )));
            }
        }
        if token_sha256.is_none() && entry.cert_subject.is_none() {
            return Err(invalid(format!(
                "principal {name:?} needs token_sha256 or cert_subject to authenticate"
            )));
        }
        let mut permissions = BTreeSet::new();
        for p in &entry.permissions {
            permissions.insert(Permission::from_name(p).ok_or_else(|| {
                invalid(format!(
                    "principal {name:?}: unknown permission {p:?} (known: {})",
                    Permission::ALL.map(Permission::as_str).join(", ")
                ))
            })?);
        }
        out.push(Principal {
            name,
            token_sha256,
            cert_subject: entry.cert_subject,
            permissions,
        });
    }
    Ok(out)
}
