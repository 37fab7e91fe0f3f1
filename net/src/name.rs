//! Node names: `name@host:port`, as in `b@127.0.0.1:9101`.
//!
//! A [`NodeName`] is both the identity of a node and the address its listener is reached at. It
//! is parsed once, kept as the exact text it was parsed from, and compared byte for byte (like an
//! Erlang node atom): `b@Host:9101` and `b@host:9101` are two different names.
//!
//! # The invariant
//!
//! Every `NodeName` value is in canonical form, so that two names that denote the same node
//! compare equal and [`Display`](fmt::Display) round-trips through [`NodeName::parse`]:
//!
//! - the *name* part is 1 to 64 characters of `[A-Za-z0-9_-]`;
//! - the *host* is an IPv4 address or a host name (`[A-Za-z0-9._-]`, at most 253 characters), or an
//!   IPv6 address in brackets (`[::1]`);
//! - the *port* is a decimal `u16` without sign or leading zeros. Port 0 is allowed: it means "pick
//!   a free port" when a node starts, and the node then takes [`NodeName::with_port`] of the port
//!   it was given.
#![allow(dead_code)] // TODO(integration): remove once the node uses every accessor.

use std::error::Error;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// The longest name part, in characters.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// The longest host part, in characters (brackets of an IPv6 host included); a DNS name's limit.
pub(crate) const MAX_HOST_LEN: usize = 253;

/// What every error message shows as the expected form.
const EXPECTED: &str = "expected name@host:port, e.g. b@127.0.0.1:9101";

/// The name of a node, `name@host:port`, in canonical form (see the [module docs](self)).
///
/// Ordering and hashing are those of the text. Parse with [`NodeName::parse`] or `str::parse`;
/// [`Display`](fmt::Display) prints the text back.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeName {
    /// The whole name, exactly as parsed. Comes first so that the derived `Ord` is the text's.
    text: Box<str>,
    /// Byte index of the `@`.
    at: usize,
    /// Byte index of the `:` before the port.
    colon: usize,
    /// The port, parsed.
    port: u16,
}

impl NodeName {
    /// Parses `name@host:port`.
    ///
    /// # Errors
    ///
    /// A [`NameError`] that says which part is wrong and shows the expected form.
    pub(crate) fn parse(s: &str) -> Result<NodeName, NameError> {
        let at = s.find('@').ok_or(NameError::MissingAt)?;
        let name = &s[..at];
        check_name(name)?;
        let rest = &s[at + 1..];
        let colon_in_rest = if rest.starts_with('[') {
            // `[ipv6]:port`: the port's colon is the one right after the closing bracket.
            let close = rest.find(']').ok_or(NameError::BadIpv6)?;
            let inside = &rest[1..close];
            if inside.parse::<Ipv6Addr>().is_err() {
                return Err(NameError::BadIpv6);
            }
            match rest[close + 1..].chars().next() {
                Some(':') => close + 1,
                _ => return Err(NameError::MissingPort),
            }
        } else {
            rest.rfind(':').ok_or(NameError::MissingPort)?
        };
        let host = &rest[..colon_in_rest];
        check_host(host)?;
        let port = parse_port(&rest[colon_in_rest + 1..])?;
        Ok(NodeName { text: s.into(), at, colon: at + 1 + colon_in_rest, port })
    }

    /// The name part, before the `@`.
    pub(crate) fn name(&self) -> &str {
        &self.text[..self.at]
    }

    /// The host part, as written (an IPv6 host keeps its brackets).
    pub(crate) fn host(&self) -> &str {
        &self.text[self.at + 1..self.colon]
    }

    /// The port; 0 means "pick a free port" (only meaningful when starting a node).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The address part, `host:port`, ready for [`std::net::ToSocketAddrs`] (which understands
    /// the brackets of an IPv6 host).
    pub(crate) fn address(&self) -> &str {
        &self.text[self.at + 1..]
    }

    /// The whole name, `name@host:port`.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The same name and host with another port: what a node started on port 0 is called once it
    /// knows the port it listens on.
    pub(crate) fn with_port(&self, port: u16) -> NodeName {
        let text = format!("{}:{port}", &self.text[..self.colon]);
        NodeName { text: text.into(), at: self.at, colon: self.colon, port }
    }
}

fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::EmptyName);
    }
    if let Some(ch) = name.chars().find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
        return Err(NameError::BadNameChar { ch });
    }
    // All ASCII from here on, so bytes are characters.
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::NameTooLong { len: name.len() });
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), NameError> {
    if host.is_empty() {
        return Err(NameError::EmptyHost);
    }
    if !host.starts_with('[') {
        if let Some(ch) = host.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))) {
            return Err(if ch == ':' { NameError::BadIpv6 } else { NameError::BadHostChar { ch } });
        }
    }
    // Either all ASCII (checked above) or a bracketed IPv6 address (checked by the caller).
    if host.len() > MAX_HOST_LEN {
        return Err(NameError::HostTooLong { len: host.len() });
    }
    Ok(())
}

fn parse_port(port: &str) -> Result<u16, NameError> {
    let bad = || NameError::BadPort { port: truncate_for_display(port, 16) };
    if port.is_empty() {
        return Err(NameError::MissingPort);
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) || (port.len() > 1 && port.starts_with('0')) {
        return Err(bad());
    }
    port.parse().map_err(|_| bad())
}

/// At most `max` characters of `s`, for putting untrusted text into an error message.
pub(crate) fn truncate_for_display(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

impl FromStr for NodeName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<NodeName, NameError> {
        NodeName::parse(s)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeName({:?})", &*self.text)
    }
}

/// Why a string is not a valid node name (`name@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// There is no `@` between the name and the host.
    MissingAt,
    /// Nothing before the `@`.
    EmptyName,
    /// The name part is longer than 64 characters.
    NameTooLong {
        /// Its length.
        len: usize,
    },
    /// The name part holds a character outside `[A-Za-z0-9_-]`.
    BadNameChar {
        /// The first such character.
        ch: char,
    },
    /// Nothing between the `@` and the `:port`.
    EmptyHost,
    /// The host part is longer than 253 characters.
    HostTooLong {
        /// Its length.
        len: usize,
    },
    /// The host holds a character that no IPv4 address or host name has.
    BadHostChar {
        /// The first such character.
        ch: char,
    },
    /// The host looks like an IPv6 address but is not one in brackets.
    BadIpv6,
    /// There is no `:port` after the host.
    MissingPort,
    /// The port is not a decimal number from 0 to 65535 without sign or leading zeros.
    BadPort {
        /// The port as written (at most 16 characters of it).
        port: String,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid node name: ")?;
        match self {
            NameError::MissingAt => write!(f, "no '@' between name and host"),
            NameError::EmptyName => write!(f, "the name before '@' is empty"),
            NameError::NameTooLong { len } => {
                write!(f, "the name before '@' has {len} characters, at most {MAX_NAME_LEN} are allowed")
            }
            NameError::BadNameChar { ch } => {
                write!(f, "the name before '@' contains {ch:?}; only letters, digits, '_' and '-' are allowed")
            }
            NameError::EmptyHost => write!(f, "the host between '@' and ':port' is empty"),
            NameError::HostTooLong { len } => {
                write!(f, "the host has {len} characters, at most {MAX_HOST_LEN} are allowed")
            }
            NameError::BadHostChar { ch } => {
                write!(f, "the host contains {ch:?}; use an IPv4 address, a host name or a bracketed IPv6 address")
            }
            NameError::BadIpv6 => write!(f, "an IPv6 host must be a valid address in brackets, as in a@[::1]:9101"),
            NameError::MissingPort => write!(f, "no ':port' after the host"),
            NameError::BadPort { port } => write!(f, "the port {port:?} is not a number from 0 to 65535"),
        }?;
        write!(f, " ({EXPECTED})")
    }
}

impl Error for NameError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> NodeName {
        NodeName::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    #[test]
    fn good_names_parse_into_their_parts_and_round_trip() {
        let cases = [
            ("b@127.0.0.1:9101", "b", "127.0.0.1", 9101),
            ("node_1-x@example.com:1", "node_1-x", "example.com", 1),
            ("a@localhost:0", "a", "localhost", 0),
            ("a@[::1]:65535", "a", "[::1]", 65535),
            ("a@[2001:db8::42]:4369", "a", "[2001:db8::42]", 4369),
            ("A9@my_host.local:80", "A9", "my_host.local", 80),
        ];
        for (text, name, host, port) in cases {
            let n = parse(text);
            assert_eq!((n.name(), n.host(), n.port()), (name, host, port), "{text}");
            assert_eq!(n.as_str(), text);
            assert_eq!(n.to_string(), text);
            assert_eq!(n.address(), &text[name.len() + 1..]);
            assert_eq!(parse(&n.to_string()), n);
            assert_eq!(text.parse::<NodeName>().unwrap(), n);
        }
    }

    #[test]
    fn longest_allowed_parts_parse() {
        let name = "n".repeat(MAX_NAME_LEN);
        let host = "h".repeat(MAX_HOST_LEN);
        let n = parse(&format!("{name}@{host}:1"));
        assert_eq!(n.name().len(), MAX_NAME_LEN);
        assert_eq!(n.host().len(), MAX_HOST_LEN);
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        let long_name = format!("{}@h:1", "n".repeat(MAX_NAME_LEN + 1));
        let long_host = format!("a@{}:1", "h".repeat(MAX_HOST_LEN + 1));
        let cases: Vec<(&str, NameError)> = vec![
            ("", NameError::MissingAt),
            ("b127.0.0.1:9101", NameError::MissingAt),
            ("@h:1", NameError::EmptyName),
            ("a b@h:1", NameError::BadNameChar { ch: ' ' }),
            ("a.b@h:1", NameError::BadNameChar { ch: '.' }),
            ("é@h:1", NameError::BadNameChar { ch: 'é' }),
            ("a@b@h:1", NameError::BadHostChar { ch: '@' }),
            (&long_name, NameError::NameTooLong { len: MAX_NAME_LEN + 1 }),
            ("a@:1", NameError::EmptyHost),
            ("a@h h:1", NameError::BadHostChar { ch: ' ' }),
            ("a@h\n:1", NameError::BadHostChar { ch: '\n' }),
            ("a@h/x:1", NameError::BadHostChar { ch: '/' }),
            (&long_host, NameError::HostTooLong { len: MAX_HOST_LEN + 1 }),
            ("a@::1:9101", NameError::BadIpv6),
            ("a@[::1:9101", NameError::BadIpv6),
            ("a@[not-ip]:9101", NameError::BadIpv6),
            ("a@[::1]9101", NameError::MissingPort),
            ("a@[::1]", NameError::MissingPort),
            ("a@h", NameError::MissingPort),
            ("a@h:", NameError::MissingPort),
            ("a@h:65536", NameError::BadPort { port: "65536".into() }),
            ("a@h:+1", NameError::BadPort { port: "+1".into() }),
            ("a@h:-1", NameError::BadPort { port: "-1".into() }),
            ("a@h:09101", NameError::BadPort { port: "09101".into() }),
            ("a@h:1 ", NameError::BadPort { port: "1 ".into() }),
            ("a@h:12345678901234567890", NameError::BadPort { port: "1234567890123456…".into() }),
        ];
        for (text, want) in cases {
            assert_eq!(NodeName::parse(text), Err(want), "{text:?}");
        }
    }

    #[test]
    fn error_messages_say_what_is_wrong_and_show_the_expected_form() {
        let e = NodeName::parse("b127.0.0.1:9101").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid node name: no '@' between name and host (expected name@host:port, e.g. b@127.0.0.1:9101)"
        );
        let e = NodeName::parse("b@h:x").unwrap_err().to_string();
        assert!(e.contains("the port \"x\" is not a number"), "{e}");
        let e = NodeName::parse("b\u{7}@h:1").unwrap_err().to_string();
        assert!(e.contains("'\\u{7}'"), "control characters are escaped: {e}");
    }

    #[test]
    fn with_port_replaces_only_the_port() {
        let n = parse("a@[::1]:0").with_port(9101);
        assert_eq!(n, parse("a@[::1]:9101"));
        assert_eq!((n.name(), n.host(), n.port()), ("a", "[::1]", 9101));
        assert_eq!(parse("a@h:9101").with_port(0).as_str(), "a@h:0");
    }

    #[test]
    fn names_compare_and_order_by_text() {
        assert_ne!(parse("a@Host:1"), parse("a@host:1"));
        assert!(parse("a@h:1") < parse("b@h:1"));
        assert_eq!(format!("{:?}", parse("a@h:1")), "NodeName(\"a@h:1\")");
    }
}
