//! Identities of a client certificate (mTLS): its DNS subject alternative names, or its
//! subject common name when it has none, which `[[principals]] cert_subject` is matched
//! against (ASCII case-insensitively, as DNS names compare).
//!
//! The CN is ignored when DNS SANs are present (RFC 6125 §6.4.4): a CA that vets SANs may
//! put anything in the CN, so a CN must not bind a certificate to another principal.

use x509_parser::{extensions::GeneralName, prelude::FromDer};

/// DNS SANs of a DER certificate, or its CN if it has no DNS SAN; empty when it cannot be
/// parsed (the TLS layer has already verified the chain, so this only fails for exotic
/// certificates).
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
    if !out.is_empty() {
        return out;
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(text) = cn.as_str() {
            out.push(text.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair};

    use super::identities;

    fn der(sans: &[&str], cn: &str) -> Vec<u8> {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn common_name_only_without_dns_names() {
        assert_eq!(
            identities(&der(&["a.internal", "b.internal"], "admin.internal")),
            ["a.internal", "b.internal"]
        );
        assert_eq!(identities(&der(&[], "admin.internal")), ["admin.internal"]);
        assert!(identities(b"not a certificate").is_empty());
    }
}
