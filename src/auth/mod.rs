//! Who is calling: service principals authenticated by bearer token (stored only as SHA-256)
//! or by client certificate (mTLS), and the development principal when none are configured.

pub mod certificate;
pub mod layer;
pub mod token;

use std::collections::BTreeSet;

use crate::domain::permission::{Caller, Permission};

/// A configured service principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Its name, recorded in audit events and logs.
    pub name: String,
    /// SHA-256 of its bearer token, if it authenticates by token.
    pub token_sha256: Option<[u8; 32]>,
    /// The certificate identity (DNS SAN or CN) it authenticates with under mTLS, if any.
    pub cert_subject: Option<String>,
    /// What it may do.
    pub permissions: BTreeSet<Permission>,
}

/// Why a call could not be authenticated. Deliberately coarse: the client is never told
/// which part of its credentials was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No usable credentials, or credentials that match no principal.
    Unauthenticated,
}

/// Maps credentials to principals.
#[derive(Debug, Clone)]
pub struct Authenticator {
    /// Configured principals; empty means development mode.
    principals: Vec<Principal>,
}

impl Authenticator {
    /// An authenticator over `principals` (empty: development mode).
    pub fn new(principals: Vec<Principal>) -> Self {
        Self { principals }
    }

    /// True when no principals are configured and every caller is the development principal.
    pub fn is_development(&self) -> bool {
        self.principals.is_empty()
    }

    /// Authenticates a call from its `authorization` header value and the identities of its
    /// client certificate (DNS SANs and CN), if any. A certificate bound to a principal wins;
    /// otherwise the bearer token decides.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        cert_identities: &[String],
    ) -> Result<Caller, AuthError> {
        if self.is_development() {
            return Ok(Caller::development());
        }
        if !cert_identities.is_empty()
            && let Some(p) = self.principals.iter().find(|p| {
                p.cert_subject
                    .as_ref()
                    .is_some_and(|s| cert_identities.iter().any(|id| id.eq_ignore_ascii_case(s)))
            })
        {
            return Ok(caller(p));
        }
        let token = authorization
            .and_then(token::bearer)
            .ok_or(AuthError::Unauthenticated)?;
        let presented = token::sha256(token);
        // Compare against every principal, in constant time each, so timing reveals neither
        // which principal matched nor how much of a hash did.
        let mut found: Option<&Principal> = None;
        for p in &self.principals {
            if let Some(expected) = &p.token_sha256
                && token::constant_time_eq(expected, &presented)
            {
                found = Some(p);
            }
        }
        found.map(caller).ok_or(AuthError::Unauthenticated)
    }
}

fn caller(p: &Principal) -> Caller {
    Caller {
        principal: p.name.clone(),
        permissions: p.permissions.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str, token: &str, cert: Option<&str>) -> Principal {
        Principal {
            name: name.into(),
            token_sha256: Some(token::sha256(token.as_bytes())),
            cert_subject: cert.map(Into::into),
            permissions: [Permission::GrantsRead].into_iter().collect(),
        }
    }

    #[test]
    fn tokens_and_certificates() {
        let auth = Authenticator::new(vec![
            principal("a", "token-a", None),
            principal("b", "token-b", Some("b.internal")),
        ]);
        let who = |h: &str, certs: &[&str]| {
            let certs: Vec<String> = certs.iter().map(|c| c.to_string()).collect();
            auth.authenticate(Some(h.as_bytes()), &certs)
                .map(|c| c.principal)
        };
        assert_eq!(who("Bearer token-a", &[]), Ok("a".into()));
        assert_eq!(who("bearer token-b", &[]), Ok("b".into()));
        assert_eq!(who("Bearer token-c", &[]), Err(AuthError::Unauthenticated));
        assert_eq!(who("Basic token-a", &[]), Err(AuthError::Unauthenticated));
        assert_eq!(who("", &["b.internal"]), Ok("b".into()));
        // DNS names compare case-insensitively.
        assert_eq!(who("", &["B.Internal"]), Ok("b".into()));
        assert_eq!(who("", &["c.internal"]), Err(AuthError::Unauthenticated));
        assert_eq!(
            auth.authenticate(None, &[]).map(|c| c.principal),
            Err(AuthError::Unauthenticated)
        );
        assert!(Authenticator::new(vec![]).authenticate(None, &[]).is_ok());
    }
}
