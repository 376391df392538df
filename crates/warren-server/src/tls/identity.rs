//! The user name a client certificate stands for in an EXTERNAL login, chosen as RabbitMQ's
//! `ssl_cert_login_from` chooses it, and spelled as RabbitMQ spells it (`rabbit_ssl`,
//! `rabbit_cert_info`): a distinguished name is RFC 4514-like, last RDN first, `,` between RDNs
//! and `+` inside one, RabbitMQ's attribute names, and its escaping.

use x509_parser::asn1_rs::{Any, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::options::{CertLoginFrom, SanType};

/// How the certificate names its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFrom {
    /// `ssl_cert_login_from`.
    pub from: CertLoginFrom,
    /// `ssl_cert_login_san_type`.
    pub san_type: SanType,
    /// `ssl_cert_login_san_index` (0 is the first name of that type).
    pub san_index: usize,
}

/// Why a certificate names no user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoName {
    /// The certificate does not parse.
    #[error("the peer certificate cannot be parsed")]
    Unparsable,
    /// It lacks the part asked for (RabbitMQ's "no name found").
    #[error("no name found")]
    NotFound,
}

/// The user name `der` stands for.
pub fn user_name(der: &[u8], how: &LoginFrom) -> Result<String, NoName> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| NoName::Unparsable)?;
    match how.from {
        CertLoginFrom::DistinguishedName => Ok(distinguished_name(&cert)),
        CertLoginFrom::CommonName => {
            let cns: Vec<String> = cert
                .subject()
                .iter_common_name()
                .map(|a| value_text(a.attr_value()))
                .collect();
            if cns.is_empty() {
                Err(NoName::NotFound)
            } else {
                Ok(cns.join(","))
            }
        }
        CertLoginFrom::SubjectAlternativeName => {
            let san = cert
                .subject_alternative_name()
                .map_err(|_| NoName::Unparsable)?
                .ok_or(NoName::NotFound)?;
            san.value
                .general_names
                .iter()
                .filter_map(|n| match (how.san_type, n) {
                    (SanType::Dns, GeneralName::DNSName(s))
                    | (SanType::Email, GeneralName::RFC822Name(s))
                    | (SanType::Uri, GeneralName::URI(s)) => Some(s.to_string()),
                    _ => None,
                })
                .nth(how.san_index)
                .ok_or(NoName::NotFound)
        }
    }
}

/// The subject as RabbitMQ's `rabbit_cert_info:subject/1` writes it.
pub fn distinguished_name(cert: &X509Certificate<'_>) -> String {
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let id = atv.attr_type().to_id_string();
                    let value = escape(&value_text(atv.attr_value()));
                    match attribute_name(&id) {
                        Some(name) => format!("{name}={value}"),
                        None => format!("{id}={value}"),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// RabbitMQ's short names for attribute types; others are written as dotted OIDs.
fn attribute_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.4" => "SN",
        "2.5.4.42" => "GIVENNAME",
        "2.5.4.43" => "INITIALS",
        "2.5.4.44" => "GENERATIONQUALIFIER",
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "TITLE",
        "2.5.4.6" => "C",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.65" => "PSEUDONYM",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "EMAILADDRESS",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// A directory string as UTF-8: Teletex read as Latin-1, BMP as UCS-2, Universal as UCS-4, the
/// rest (Printable, UTF8, IA5...) as they are, as RabbitMQ converts them.
fn value_text(v: &Any<'_>) -> String {
    let data = v.data;
    match v.tag() {
        Tag::TeletexString => data.iter().map(|&b| char::from(b)).collect(),
        Tag::BmpString => data
            .chunks(2)
            .map(|c| {
                let unit = u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
                char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        Tag::UniversalString => data
            .chunks(4)
            .map(|c| {
                let unit = c.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b));
                char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        _ => String::from_utf8_lossy(data).into_owned(),
    }
}

/// RabbitMQ's RFC 4514 escaping, byte by byte over the UTF-8 text: a leading space or `#` and a
/// trailing space get a backslash, as do `"+,;<>\`; bytes below 32 and from 126 up become
/// `\XX` in upper-case hex.
pub fn escape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == bytes.len();
        if first && (b == b' ' || b == b'#') {
            out.push('\\');
            out.push(char::from(b));
        } else if !first && last && b == b' ' {
            out.push_str("\\ ");
        } else if matches!(b, b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\') {
            out.push('\\');
            out.push(char::from(b));
        } else if !(32..126).contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_rabbit_cert_info() {
        assert_eq!(escape("client"), "client");
        assert_eq!(escape(" a b "), "\\ a b\\ ");
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(
            escape("a,b+c;d<e>f\"g\\h"),
            "a\\,b\\+c\\;d\\<e\\>f\\\"g\\\\h"
        );
        // Not ASCII (é is C3 A9 in UTF-8) and `~` (126) are hex-escaped, byte by byte.
        assert_eq!(escape("é~"), "\\C3\\A9\\7E");
        assert_eq!(escape(" "), "\\ ");
    }
}
