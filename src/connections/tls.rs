//! The rustls server configuration of `[tls]`, read once at start. Every way a file can be
//! unusable is reported with that file's path, before anything else starts.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio_rustls::rustls::{
    self, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Where the server's TLS identity and, for mTLS, the client CA are (`[tls]`). Paths only:
/// the files are read by [`tls_server_config`] when the server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA that signs client certificates (PEM); when set, client certificates are required.
    pub client_ca: Option<PathBuf>,
}

/// Why the `[tls]` files cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("tls: {path}: {reason}")]
pub struct TlsFileError {
    /// The file at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

fn tls_error(path: &Path, reason: impl Into<String>) -> TlsFileError {
    TlsFileError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| tls_error(path, format!("cannot read: {e}")))
}

/// Every `CERTIFICATE` block of a PEM file (at least one), each a parseable X.509
/// certificate, so a bad certificate is blamed on its own file rather than on the key.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error(path, "no CERTIFICATE block"));
    }
    for (i, cert) in certs.iter().enumerate() {
        X509Certificate::from_der(cert).map_err(|e| {
            tls_error(
                path,
                format!(
                    "certificate {} is not a valid X.509 certificate: {e}",
                    i + 1
                ),
            )
        })?;
    }
    Ok(certs)
}

/// The private key of a PEM file; an encrypted key is refused with what to do about it.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let pem = read(path)?;
    if pem.windows(9).any(|w| w == b"ENCRYPTED") {
        return Err(tls_error(
            path,
            "the private key is encrypted; store it decrypted with restricted file permissions \
             (`openssl pkey -in KEY -out KEY.plain`)",
        ));
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        tls_error(
            path,
            format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
        )
    })
}

/// A client CA bundle: every certificate must be a CA (basicConstraints CA:TRUE), or
/// client certificates it "signs" could never verify and every mTLS client would fail.
fn client_roots(path: &Path) -> Result<RootCertStore, TlsFileError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certificates(path)?.into_iter().enumerate() {
        let is_ca = X509Certificate::from_der(&cert)
            .ok()
            .and_then(|(_, c)| c.basic_constraints().ok().flatten().map(|b| b.value.ca))
            .unwrap_or(false);
        if !is_ca {
            return Err(tls_error(
                path,
                format!(
                    "certificate {} is not a CA certificate (basicConstraints CA:TRUE)",
                    i + 1
                ),
            ));
        }
        roots
            .add(cert)
            .map_err(|e| tls_error(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The rustls configuration of `[tls]`: the server identity (HTTP/2 only) and, with
/// `client_ca`, required client certificates signed by it.
pub fn tls_server_config(tls: &TlsSettings) -> Result<rustls::ServerConfig, TlsFileError> {
    let chain = certificates(&tls.cert)?;
    let key = private_key(&tls.key)?;
    // ring, named rather than taken from the process default, which is ambiguous (a panic)
    // if another dependency ever enables a second provider.
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_error(&tls.cert, format!("no usable TLS protocol version: {e}")))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder(Arc::new(client_roots(ca)?))
                .build()
                .map_err(|e| tls_error(ca, format!("not a usable client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        tls_error(
            &tls.key,
            format!(
                "does not fit the certificate in {}: {e}",
                tls.cert.display()
            ),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}
