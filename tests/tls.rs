//! TLS and mTLS through the real server: bearer tokens over TLS, client certificates bound to
//! principals, certificates from unknown CAs, and health under mTLS. Every certificate is
//! generated at test time into a temp directory; no key is ever checked in.

mod common;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use accessgrant::{
    audit::{AuditEvent, EventActor, EventKind},
    auth::{Principal, token},
    clock::ManualClock,
    config::{Config, Overrides},
    connections::TlsSettings,
    domain::permission::Permission,
    proto::v1::{
        self as pb, access_grant_service_client::AccessGrantServiceClient,
        account_service_client::AccountServiceClient,
        support_access_service_client::SupportAccessServiceClient,
    },
    storage::{Store, audit_log},
};
use common::{assert_error, authorize_request, t0, use_test_signing_key};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{
    Code, Request,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The identity (DNS SAN) of the support tooling's client certificate.
const SUPPORT_SUBJECT: &str = "support-tooling.internal";
/// The identity of a certificate from the trusted CA that no principal is bound to.
const STRANGER_SUBJECT: &str = "stranger.internal";
/// The provisioning principal's bearer token.
const PROVISIONING_TOKEN: &str = "provisioning-token";

/// Test PKI in a temp directory: `ca.pem`, and `<name>.pem` / `<name>.key` for the server
/// (`server`), the support tooling (`support`), a stranger (`stranger`), and a certificate
/// claiming the support tooling's identity but signed by another CA (`untrusted`).
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let trusted = ca("accessgrant test CA");
        let other = ca("some other CA");
        std::fs::write(dir.path().join("ca.pem"), trusted.pem()).unwrap();
        let leaves: [(&str, &str, ExtendedKeyUsagePurpose, &Issuer<'_, KeyPair>); 4] = [
            (
                "server",
                "localhost",
                ExtendedKeyUsagePurpose::ServerAuth,
                &trusted,
            ),
            (
                "support",
                SUPPORT_SUBJECT,
                ExtendedKeyUsagePurpose::ClientAuth,
                &trusted,
            ),
            (
                "stranger",
                STRANGER_SUBJECT,
                ExtendedKeyUsagePurpose::ClientAuth,
                &trusted,
            ),
            (
                "untrusted",
                SUPPORT_SUBJECT,
                ExtendedKeyUsagePurpose::ClientAuth,
                &other,
            ),
        ];
        for (file, dns, usage, issuer) in leaves {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec![dns.to_owned()]).unwrap();
            // A CN that matches no principal: binding goes through the DNS SAN.
            params
                .distinguished_name
                .push(DnType::CommonName, format!("{file} test certificate"));
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, issuer).unwrap();
            std::fs::write(dir.path().join(format!("{file}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{file}.key")), key.serialize_pem()).unwrap();
        }
        Self { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).unwrap()
    }

    /// The server's `[tls]`: its identity, and the test CA for client certificates if `mtls`.
    fn server_tls(&self, mtls: bool) -> TlsSettings {
        TlsSettings {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: mtls.then(|| self.path("ca.pem")),
        }
    }

    /// A client endpoint trusting the test CA, presenting the named client certificate if any.
    fn endpoint(&self, addr: SocketAddr, client_cert: Option<&str>) -> Endpoint {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.read("ca.pem")))
            .domain_name("localhost");
        if let Some(name) = client_cert {
            tls = tls.identity(Identity::from_pem(
                self.read(&format!("{name}.pem")),
                self.read(&format!("{name}.key")),
            ));
        }
        Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
    }
}

/// A configuration serving `database_url` on loopback with `tls`.
fn server_config(database_url: &str, tls: TlsSettings) -> Config {
    let mut config = Config::load(Overrides {
        listen: Some("127.0.0.1:0".into()),
        database_url: Some(database_url.to_owned()),
        ..Overrides::default()
    })
    .unwrap();
    config.tls = Some(tls);
    use_test_signing_key(&mut config);
    config
}

/// A self-signed CA.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A running TLS server.
struct TlsServer {
    addr: SocketAddr,
    database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    /// Starts a server with the test PKI's server identity, requiring client certificates
    /// signed by the test CA when `mtls`, and waits until it answers a health check.
    async fn spawn(pki: &Pki, mtls: bool, principals: Vec<Principal>) -> Self {
        Self::spawn_with(pki, mtls, principals, |_| {}).await
    }

    /// [`TlsServer::spawn`], after letting the test adjust the configuration.
    async fn spawn_with(
        pki: &Pki,
        mtls: bool,
        principals: Vec<Principal>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = common::fresh_database_url(dir.path()).await;
        let mut config = server_config(&database_url, pki.server_tls(mtls));
        config.principals = principals;
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            accessgrant::server::run(config, Arc::new(ManualClock::new(t0())), listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let server = Self {
            addr,
            database_url,
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
        };
        // Health needs no credentials, but under mTLS the handshake needs a certificate.
        let probe = pki.endpoint(addr, mtls.then_some("stranger"));
        for _ in 0..200 {
            if let Ok(channel) = probe.connect().await
                && health(channel).await.is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("TLS server at {addr} did not come up");
    }

    /// The audit events of `id`, oldest first, read straight from the database.
    async fn events(&self, id: &str) -> Vec<AuditEvent> {
        let store = Store::connect(&self.database_url).await.unwrap();
        let events = audit_log::events_of(store.reader(), id, 100).await.unwrap();
        store.close().await.unwrap();
        events
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
    }
}

/// A principal authenticating with `token` and holding `permissions`.
fn token_principal(name: &str, token_text: &str, permissions: &[Permission]) -> Principal {
    Principal {
        name: name.into(),
        token_sha256: Some(token::sha256(token_text.as_bytes())),
        cert_subject: None,
        permissions: permissions.iter().copied().collect(),
    }
}

/// The principals of the mTLS tests: the support tooling (certificate only) and provisioning
/// (token only).
fn mtls_principals() -> Vec<Principal> {
    vec![
        Principal {
            name: "support-tooling".into(),
            token_sha256: None,
            cert_subject: Some(SUPPORT_SUBJECT.into()),
            permissions: [Permission::AccessAuthorize].into_iter().collect(),
        },
        token_principal(
            "provisioning",
            PROVISIONING_TOKEN,
            &[Permission::AccountsWrite],
        ),
    ]
}

/// `msg` with `authorization: Bearer <token>` when a token is given.
fn request<T>(msg: T, bearer: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(t) = bearer {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

fn upsert_request(id: &str) -> pb::UpsertAccountRequest {
    pb::UpsertAccountRequest {
        account_id: id.into(),
        plan: pb::AccountPlan::Paid.into(),
        request_id: String::new(),
    }
}

/// The overall health status over `channel`.
async fn health(channel: Channel) -> Result<ServingStatus, tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status())
}

/// Connects with `endpoint` and upserts `id` with `bearer`; any failure (connect, handshake,
/// call, or no answer within 15 s) is an error.
async fn try_upsert(endpoint: Endpoint, id: &str, bearer: Option<&str>) -> Result<(), String> {
    let attempt = async {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        AccountServiceClient::new(channel)
            .upsert_account(request(upsert_request(id), bearer))
            .await
            .map(drop)
            .map_err(|s| format!("call: {s:?}"))
    };
    tokio::time::timeout(Duration::from_secs(15), attempt)
        .await
        .unwrap_or_else(|_| Err("no answer within 15 s".into()))
}

/// Over TLS without client CA, a bearer-token principal works without a client certificate, and a plaintext client cannot talk to the TLS port.
#[tokio::test]
async fn tls_with_bearer_token_and_no_plaintext() {
    let pki = Pki::new();
    let s = TlsServer::spawn(
        &pki,
        false,
        vec![token_principal(
            "tls-client",
            "tls-token",
            &[Permission::GrantsRead, Permission::AccountsWrite],
        )],
    )
    .await;
    let channel = pki.endpoint(s.addr, None).connect().await.unwrap();

    AccountServiceClient::new(channel.clone())
        .upsert_account(request(upsert_request("acme"), Some("tls-token")))
        .await
        .unwrap();
    let grant = AccessGrantServiceClient::new(channel.clone())
        .get_access_grant(request(
            pb::GetAccessGrantRequest {
                account_id: "acme".into(),
            },
            Some("tls-token"),
        ))
        .await
        .unwrap()
        .into_inner()
        .access_grant
        .unwrap();
    assert_eq!(grant.account_id, "acme");
    assert_eq!(grant.state(), pb::access_grant::State::Disabled);
    let created = &s.events("acme").await[0];
    assert_eq!(created.kind, EventKind::AccountCreated);
    assert_eq!(
        created.actor,
        EventActor::ServicePrincipal("tls-client".into())
    );

    // TLS alone authenticates nobody: without the token the call is refused.
    let status = AccountServiceClient::new(channel)
        .upsert_account(request(upsert_request("other"), None))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unauthenticated, "UNAUTHENTICATED");

    // A plaintext client gets nowhere on the TLS port.
    let plaintext = Endpoint::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    let outcome = try_upsert(plaintext, "plain", Some("tls-token")).await;
    assert!(
        outcome.is_err(),
        "a plaintext call succeeded on the TLS port"
    );
    assert!(s.events("plain").await.is_empty());
    assert!(s.events("other").await.is_empty());
    s.stop().await;
}

/// Under mTLS, a client certificate bound to a principal authenticates without a token, and the principal is audited.
#[tokio::test]
async fn mtls_bound_certificate_authenticates_as_its_principal() {
    let pki = Pki::new();
    let s = TlsServer::spawn(&pki, true, mtls_principals()).await;
    let channel = pki
        .endpoint(s.addr, Some("support"))
        .connect()
        .await
        .unwrap();
    let r = SupportAccessServiceClient::new(channel)
        .authorize_assumption(request(authorize_request("acct"), None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision(), pb::Decision::Deny);
    assert_eq!(r.deny_reason(), pb::DenyReason::AccountNotFound);

    let events = s.events("acct").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::AssumptionDenied);
    assert_eq!(events[0].event_id, r.audit_event_id);
    let detail: serde_json::Value = serde_json::from_str(&events[0].detail_json).unwrap();
    assert_eq!(detail["principal"], "support-tooling");
    s.stop().await;
}

/// Under mTLS, a bound certificate grants only its principal's permissions, even when a token of a broader principal is also sent.
#[tokio::test]
async fn mtls_bound_certificate_is_limited_to_its_permissions() {
    let pki = Pki::new();
    let s = TlsServer::spawn(&pki, true, mtls_principals()).await;
    let channel = pki
        .endpoint(s.addr, Some("support"))
        .connect()
        .await
        .unwrap();
    let status = AccountServiceClient::new(channel.clone())
        .upsert_account(request(upsert_request("acme"), None))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "CALLER_LACKS_PERMISSION");
    // A certificate bound to a principal wins over the bearer token (documented on
    // `Authenticator::authenticate`).
    let status = AccountServiceClient::new(channel)
        .upsert_account(request(upsert_request("acme"), Some(PROVISIONING_TOKEN)))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "CALLER_LACKS_PERMISSION");
    assert!(s.events("acme").await.is_empty());
    s.stop().await;
}

/// Under mTLS, a valid certificate bound to no principal needs a token: without one it is unauthenticated, with one it acts as the token's principal.
#[tokio::test]
async fn mtls_unbound_certificate_falls_back_to_the_token() {
    let pki = Pki::new();
    let s = TlsServer::spawn(&pki, true, mtls_principals()).await;
    let channel = pki
        .endpoint(s.addr, Some("stranger"))
        .connect()
        .await
        .unwrap();
    let mut accounts = AccountServiceClient::new(channel);
    let status = accounts
        .upsert_account(request(upsert_request("acme"), None))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unauthenticated, "UNAUTHENTICATED");
    assert!(s.events("acme").await.is_empty());

    accounts
        .upsert_account(request(upsert_request("acme"), Some(PROVISIONING_TOKEN)))
        .await
        .unwrap();
    let events = s.events("acme").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::AccountCreated);
    assert_eq!(
        events[0].actor,
        EventActor::ServicePrincipal("provisioning".into())
    );
    s.stop().await;
}

/// Under mTLS, a client without a certificate cannot complete a call, even with a valid token.
#[tokio::test]
async fn mtls_rejects_clients_without_a_certificate() {
    let pki = Pki::new();
    let s = TlsServer::spawn(&pki, true, mtls_principals()).await;
    let outcome = try_upsert(pki.endpoint(s.addr, None), "acme", Some(PROVISIONING_TOKEN)).await;
    assert!(
        outcome.is_err(),
        "a call without a client certificate succeeded"
    );
    assert!(s.events("acme").await.is_empty());
    s.stop().await;
}

/// Under mTLS, a certificate from an untrusted CA cannot complete a call, even claiming a bound identity and sending a valid token.
#[tokio::test]
async fn mtls_rejects_certificates_from_an_untrusted_ca() {
    let pki = Pki::new();
    let s = TlsServer::spawn(&pki, true, mtls_principals()).await;
    let outcome = try_upsert(
        pki.endpoint(s.addr, Some("untrusted")),
        "acme",
        Some(PROVISIONING_TOKEN),
    )
    .await;
    assert!(
        outcome.is_err(),
        "a call with an untrusted certificate succeeded"
    );
    assert!(s.events("acme").await.is_empty());
    let channel = pki.endpoint(s.addr, Some("untrusted"));
    let outcome = tokio::time::timeout(Duration::from_secs(15), async {
        let channel = channel.connect().await.map_err(|e| format!("{e:?}"))?;
        SupportAccessServiceClient::new(channel)
            .authorize_assumption(request(authorize_request("acct"), None))
            .await
            .map_err(|s| format!("{s:?}"))
    })
    .await;
    assert!(
        !matches!(outcome, Ok(Ok(_))),
        "an untrusted certificate claiming the support tooling's identity was accepted"
    );
    assert!(s.events("acct").await.is_empty());
    s.stop().await;
}

/// Under mTLS, health needs a certificate for the handshake but no credentials: an unbound certificate without a token gets SERVING.
#[tokio::test]
async fn mtls_health_needs_a_certificate_but_no_credentials() {
    let pki = Pki::new();
    let s = TlsServer::spawn(&pki, true, mtls_principals()).await;
    for cert in ["stranger", "support"] {
        let channel = pki.endpoint(s.addr, Some(cert)).connect().await.unwrap();
        assert_eq!(health(channel).await.unwrap(), ServingStatus::Serving);
    }
    let without_cert = tokio::time::timeout(Duration::from_secs(15), async {
        let channel = pki
            .endpoint(s.addr, None)
            .connect()
            .await
            .map_err(|e| format!("{e:?}"))?;
        health(channel).await.map_err(|s| format!("{s:?}"))
    })
    .await;
    assert!(
        !matches!(without_cert, Ok(Ok(_))),
        "health answered a client without a certificate under mTLS"
    );
    s.stop().await;
}

/// A socket that never starts TLS, and a TLS session that never sends the HTTP/2 preface,
/// are both closed at the handshake timeout; a real client is still served afterwards.
#[tokio::test]
async fn tls_handshake_and_preface_must_finish_within_the_handshake_timeout() {
    let pki = Pki::new();
    let timeout = Duration::from_millis(400);
    let s = TlsServer::spawn_with(
        &pki,
        false,
        vec![token_principal(
            "tls-client",
            "tls-token",
            &[Permission::AccountsWrite],
        )],
        |c| c.limits.handshake_timeout = timeout,
    )
    .await;
    let started = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots
        .add(tokio_rustls::rustls::pki_types::CertificateDer::from(
            first_certificate_der(&pki.read("ca.pem")),
        ))
        .unwrap();
    let mut client = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut quiet_tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("the TLS handshake itself succeeds");

    assert!(common::closed_within(&mut silent, Duration::from_secs(5)).await);
    assert!(
        started.elapsed() >= timeout - Duration::from_millis(50),
        "closed after {:?}, before the timeout",
        started.elapsed()
    );
    assert!(
        common::closed_within(&mut quiet_tls, Duration::from_secs(5)).await,
        "a TLS session without an HTTP/2 preface stays open"
    );
    try_upsert(pki.endpoint(s.addr, None), "acme", Some("tls-token"))
        .await
        .unwrap();
    s.stop().await;
}

/// The DER of the first certificate of a PEM file.
fn first_certificate_der(pem: &[u8]) -> Vec<u8> {
    use tokio_rustls::rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem).unwrap().to_vec()
}

/// A missing or unusable `[tls]` file stops the server at start, naming that file.
#[tokio::test]
async fn unusable_tls_files_are_named_when_the_server_starts() {
    let pki = Pki::new();
    std::fs::write(pki.path("garbage.key"), "not a key").unwrap();
    std::fs::write(
        pki.path("bad-der.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        pki.path("encrypted.key"),
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let tls = |cert: &str, key: &str, ca: Option<&str>| TlsSettings {
        cert: pki.path(cert),
        key: pki.path(key),
        client_ca: ca.map(|ca| pki.path(ca)),
    };
    let cases = [
        (tls("server.pem", "garbage.key", None), "garbage.key"),
        // Another certificate's key.
        (tls("server.pem", "stranger.key", None), "stranger.key"),
        (tls("missing.pem", "server.key", None), "missing.pem"),
        // A key where the certificate should be: no CERTIFICATE block.
        (tls("server.key", "server.key", None), "server.key"),
        (
            tls("server.pem", "server.key", Some("garbage.key")),
            "garbage.key",
        ),
        // A PEM block that is not a certificate inside: the certificate's fault, not the key's.
        (tls("bad-der.pem", "server.key", None), "bad-der.pem"),
        (tls("server.pem", "encrypted.key", None), "encrypted.key"),
        // A leaf certificate as the client CA.
        (
            tls("server.pem", "server.key", Some("support.pem")),
            "support.pem",
        ),
    ];
    for (settings, file) in cases {
        let dir = tempfile::tempdir().unwrap();
        let database_url = common::fresh_database_url(dir.path()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            accessgrant::server::run(
                server_config(&database_url, settings),
                Arc::new(ManualClock::new(t0())),
                listener,
                std::future::pending(),
            ),
        )
        .await
        .expect("a bad TLS file stops the server at start");
        match result {
            Err(accessgrant::server::ServeError::Tls(e)) => {
                assert_eq!(e.path, pki.path(file), "{e}");
            }
            other => panic!("{file}: expected a TLS file error, got {other:?}"),
        }
    }
}
