//! Email addresses as a host and its stages must agree on them: one parser for a
//! prompt's email field, for the address a stage mails, and for the key a rate limit
//! counts under. An address a prompt accepts is one the mailer can deliver to.
//!
//! The rules are deliberately narrower than RFC 5322 (hand-written here because they
//! encode what this project's mail path supports, not a general grammar):
//! - at most 254 bytes (the SMTP path limit) and a local part of at most 64;
//! - no control character and no white space anywhere;
//! - an ASCII local part (non-ASCII needs SMTPUTF8, which the mailer does not
//!   speak): a dot-atom, or a quoted string whose content is itself a dot-atom
//!   (`"jane"@x` is `jane@x`);
//! - a host-name domain (IDN allowed, sent as punycode), never an address literal
//!   such as `[127.0.0.1]`.

use std::fmt;

/// Longest address accepted (RFC 5321 path limit).
pub const MAX_ADDRESS_LEN: usize = 254;
/// Longest local part accepted (RFC 5321).
pub const MAX_LOCAL_LEN: usize = 64;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Empty, or no `@` with text on both sides.
    #[error("not an email address")]
    Malformed,
    /// Longer than [`MAX_ADDRESS_LEN`] bytes or a local part over [`MAX_LOCAL_LEN`].
    #[error("longer than {MAX_ADDRESS_LEN} bytes (or a local part over {MAX_LOCAL_LEN})")]
    TooLong,
    /// A control character or white space.
    #[error("contains a control character or white space")]
    Forbidden,
    /// A non-ASCII local part (needs SMTPUTF8, which is not supported).
    #[error("a non-ASCII local part needs SMTPUTF8, which is not supported")]
    NonAsciiLocal,
    /// A local part that is not a dot-atom (or a quoted dot-atom).
    #[error("the part before @ is not valid")]
    InvalidLocal,
    /// A domain that is not a valid (internationalised) host name.
    #[error("the domain is not a valid host name")]
    InvalidDomain,
}

/// A valid address in its canonical form: quotes removed from the local part, the
/// domain in lower-case ASCII (punycode for IDN).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    local: String,
    domain: String,
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl EmailAddress {
    /// Parses and canonicalises `input` by the rules of this module.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        if input.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong);
        }
        if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(AddressError::Forbidden);
        }
        let (local, domain) = input.rsplit_once('@').ok_or(AddressError::Malformed)?;
        if local.is_empty() || domain.is_empty() {
            return Err(AddressError::Malformed);
        }
        if !local.is_ascii() {
            return Err(AddressError::NonAsciiLocal);
        }
        let local = match local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
            Some(inner) => inner,
            None => local,
        };
        if !is_dot_atom(local) {
            return Err(AddressError::InvalidLocal);
        }
        if local.len() > MAX_LOCAL_LEN {
            return Err(AddressError::TooLong);
        }
        if domain.starts_with('[') {
            return Err(AddressError::InvalidDomain);
        }
        let domain = idna::domain_to_ascii(domain).map_err(|_| AddressError::InvalidDomain)?;
        if domain.is_empty() || !domain.split('.').all(valid_label) {
            return Err(AddressError::InvalidDomain);
        }
        if local.len() + 1 + domain.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong);
        }
        Ok(Self {
            local: local.to_string(),
            domain,
        })
    }

    /// The local part (before `@`), unquoted.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain, lower-case ASCII.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The key a per-address limit counts under: the address lower-cased, and with
    /// `fold_plus_tag` a `+tag` suffix of the local part removed (`jane+x@example.com`
    /// counts as `jane@example.com`).
    pub fn limit_key(&self, fold_plus_tag: bool) -> String {
        let local = self.local.to_ascii_lowercase();
        let local = match local.split_once('+') {
            Some((base, _)) if fold_plus_tag && !base.is_empty() => base,
            _ => &local,
        };
        format!("{local}@{}", self.domain)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let a = EmailAddress::parse("Jane.Doe@Bücher.Example").unwrap();
        assert_eq!(a.to_string(), "Jane.Doe@xn--bcher-kva.example");
        let q = EmailAddress::parse("\"jane\"@example.com").unwrap();
        assert_eq!(q.to_string(), "jane@example.com");
        let p = EmailAddress::parse("jane+news@example.com").unwrap();
        assert_eq!(p.limit_key(true), "jane@example.com");
        assert_eq!(p.limit_key(false), "jane+news@example.com");
        assert_eq!(
            EmailAddress::parse("JANE@xn--bcher-kva.example")
                .unwrap()
                .limit_key(true),
            EmailAddress::parse("jane@BÜCHER.example")
                .unwrap()
                .limit_key(true)
        );
        assert_eq!(
            EmailAddress::parse("+x@example.com")
                .unwrap()
                .limit_key(true),
            "+x@example.com"
        );
    }

    #[test]
    fn refused() {
        use AddressError::*;
        let cases = [
            ("", Malformed),
            ("no-at-sign", Malformed),
            ("a@", Malformed),
            ("@b.c", Malformed),
            ("a\0b@x.y", Forbidden),
            ("\"a b\"@x.y", Forbidden),
            ("a@b.c\r\n", Forbidden),
            ("jöhn@example.com", NonAsciiLocal),
            ("a..b@x.y", InvalidLocal),
            (".a@x.y", InvalidLocal),
            ("\"a..b\"@x.y", InvalidLocal),
            ("a(b)@x.y", InvalidLocal),
            ("x@[127.0.0.1]", InvalidDomain),
            ("x@-bad.example", InvalidDomain),
            ("x@under_score.example", InvalidDomain),
            ("x@a..b", InvalidDomain),
        ];
        for (input, want) in cases {
            assert_eq!(EmailAddress::parse(input), Err(want), "{input:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long), Err(TooLong));
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(EmailAddress::parse(&long_local), Err(TooLong));
    }
}
