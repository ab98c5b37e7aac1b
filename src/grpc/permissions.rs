//! The one table of which permission each RPC needs. The admission layer checks it before
//! the request is even decoded, so a caller without the permission learns nothing (not even
//! whether an account exists). The use cases check the same permissions again, so the rules
//! also hold when the library is called directly.

use crate::domain::permission::Permission;

/// What a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Open to everyone: health checks and reflection (probes and grpcurl must work without
    /// credentials; they reveal nothing about accounts).
    Open,
    /// An authenticated caller holding this permission.
    Permission(Permission),
    /// An authenticated caller holding at least one of these (`GetAccessRequest`: support
    /// tooling reads its own requests, the Admin Center reads them for the customer). A refusal
    /// names the first.
    AnyOf(&'static [Permission]),
    /// An authenticated caller; the handler decides from the request which permission applies
    /// (`WatchAuditEvents`: `audit:read` for one account, `audit:read_all` for all).
    DecidedByHandler,
    /// Not a method of this server: authenticate, then let the router answer UNIMPLEMENTED.
    Unknown,
}

/// Every RPC of the contract and its requirement.
pub const TABLE: [(&str, Requirement); 27] = {
    use Permission::*;
    use Requirement::Permission as P;
    [
        (
            "/accessgrant.v1.AccessGrantService/GetAccessGrant",
            P(GrantsRead),
        ),
        (
            "/accessgrant.v1.AccessGrantService/BatchGetAccessGrants",
            P(GrantsRead),
        ),
        (
            "/accessgrant.v1.AccessGrantService/EnableAccessGrant",
            P(GrantsWrite),
        ),
        (
            "/accessgrant.v1.AccessGrantService/DisableAccessGrant",
            P(GrantsWrite),
        ),
        (
            "/accessgrant.v1.AccessGrantService/GetAccessPolicy",
            P(GrantsRead),
        ),
        (
            "/accessgrant.v1.AccessGrantService/UpdateAccessPolicy",
            P(GrantsWrite),
        ),
        (
            "/accessgrant.v1.AccountService/UpsertAccount",
            P(AccountsWrite),
        ),
        (
            "/accessgrant.v1.AccountService/GetAccount",
            P(AccountsWrite),
        ),
        (
            "/accessgrant.v1.AccountService/DeleteAccount",
            P(AccountsWrite),
        ),
        // Emergency requests additionally need access:emergency (checked on the decoded request).
        (
            "/accessgrant.v1.SupportAccessService/AuthorizeAssumption",
            P(AccessAuthorize),
        ),
        (
            "/accessgrant.v1.SupportAccessService/GetAssumption",
            P(AccessAuthorize),
        ),
        (
            "/accessgrant.v1.SupportAccessService/EndAssumption",
            P(AccessAuthorize),
        ),
        (
            "/accessgrant.v1.SupportAccessService/ListAssumptions",
            P(GrantsRead),
        ),
        (
            "/accessgrant.v1.SupportAccessService/RevokeAssumption",
            P(GrantsWrite),
        ),
        // Support tooling asks and closes; customer admins (through the Admin Center) answer.
        (
            "/accessgrant.v1.AccessRequestService/CreateAccessRequest",
            P(AccessAuthorize),
        ),
        (
            "/accessgrant.v1.AccessRequestService/GetAccessRequest",
            Requirement::AnyOf(&[AccessAuthorize, GrantsRead]),
        ),
        (
            "/accessgrant.v1.AccessRequestService/ListAccessRequests",
            P(GrantsRead),
        ),
        (
            "/accessgrant.v1.AccessRequestService/ApproveAccessRequest",
            P(GrantsWrite),
        ),
        (
            "/accessgrant.v1.AccessRequestService/DenyAccessRequest",
            P(GrantsWrite),
        ),
        (
            "/accessgrant.v1.AccessRequestService/CancelAccessRequest",
            P(AccessAuthorize),
        ),
        (
            "/accessgrant.v1.AccessRequestService/RevokeAccessRequest",
            P(GrantsWrite),
        ),
        ("/accessgrant.v1.AuditService/ListAuditEvents", P(AuditRead)),
        (
            "/accessgrant.v1.AuditService/VerifyAuditChain",
            P(AuditRead),
        ),
        (
            "/accessgrant.v1.AuditService/WatchAuditEvents",
            Requirement::DecidedByHandler,
        ),
        (
            "/accessgrant.v1.AuditService/GetAuditCheckpoint",
            P(AuditRead),
        ),
        (
            "/accessgrant.v1.AuditService/GetAuditInclusionProof",
            P(AuditRead),
        ),
        (
            "/accessgrant.v1.AuditService/GetAuditConsistencyProof",
            P(AuditRead),
        ),
    ]
};

/// The requirement of a request path.
pub fn requirement(path: &str) -> Requirement {
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
        return Requirement::Open;
    }
    TABLE
        .iter()
        .find(|(method, _)| *method == path)
        .map_or(Requirement::Unknown, |(_, r)| *r)
}
