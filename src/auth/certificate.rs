//! Identities of a client certificate (mTLS): its DNS subject alternative names and its
//! subject common name, which `[[principals]] cert_subject` is matched against.

use x509_parser::{extensions::GeneralName, prelude::FromDer};

/// DNS SANs and CN of a DER certificate; empty when it cannot be parsed (the TLS layer has
/// already verified the chain, so this only fails for exotic certificates).
pub fn identities(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                out.push((*dns).to_owned());
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(text) = cn.as_str() {
            out.push(text.to_owned());
        }
    }
    out
}
