//! What a calling service may do. Each RPC needs one permission (emergency assumptions need
//! `access:emergency` on top of `access:authorize`).

use std::collections::BTreeSet;

/// A permission a service principal can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Read grants.
    GrantsRead,
    /// Enable/disable grants.
    GrantsWrite,
    /// Create, convert, delete accounts.
    AccountsWrite,
    /// Ask for assumption decisions; read and end assumptions.
    AccessAuthorize,
    /// Ask for emergency assumptions.
    AccessEmergency,
    /// Read and verify one account's audit log.
    AuditRead,
    /// Watch every account's audit log at once.
    AuditReadAll,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 7] = [
        Self::GrantsRead,
        Self::GrantsWrite,
        Self::AccountsWrite,
        Self::AccessAuthorize,
        Self::AccessEmergency,
        Self::AuditRead,
        Self::AuditReadAll,
    ];

    /// The name used in configuration and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GrantsRead => "grants:read",
            Self::GrantsWrite => "grants:write",
            Self::AccountsWrite => "accounts:write",
            Self::AccessAuthorize => "access:authorize",
            Self::AccessEmergency => "access:emergency",
            Self::AuditRead => "audit:read",
            Self::AuditReadAll => "audit:read_all",
        }
    }

    /// Parses a configured name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The calling service, as authenticated by transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The principal's configured name; recorded in audit events, never its credential.
    pub principal: String,
    /// What it may do.
    pub permissions: BTreeSet<Permission>,
}

impl Caller {
    /// The all-permission principal of a server without configured principals (which only
    /// listens on loopback).
    pub fn development() -> Self {
        Self {
            principal: "development".into(),
            permissions: Permission::ALL.into_iter().collect(),
        }
    }

    /// Fails with `CallerLacksPermission` (naming the first) unless the caller holds one of
    /// `any`.
    pub fn require_any(&self, any: &[Permission]) -> Result<(), super::Error> {
        match any.iter().find(|p| self.permissions.contains(p)) {
            Some(_) => Ok(()),
            None => Err(super::Error::CallerLacksPermission(
                any.first().map_or("", |p| p.as_str()),
            )),
        }
    }

    /// Fails with `CallerLacksPermission` unless the caller holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), super::Error> {
        if self.permissions.contains(&p) {
            Ok(())
        } else {
            Err(super::Error::CallerLacksPermission(p.as_str()))
        }
    }
}
