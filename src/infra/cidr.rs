//! Allowlist patterns to CIDRs, and "is this network inside the allowlist?".
//!
//! People write SSH allowlists as "any IP starting with 197.210.77", i.e.
//! `197.210.77.*`; security groups and terraform want `197.210.77.0/24`.
//! [`parse_cidr`] accepts both spellings (plus plain addresses and IPv6)
//! and always returns a network with no host bits set, so a typo like
//! `10.0.0.5/24` is caught instead of silently widening or narrowing a rule.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::Context;
use ipnet::IpNet;

use crate::cli::CidrArgs;
use crate::exit::Exit;
use crate::output;

/// Why a pattern is not an acceptable network. Each message names the
/// input and, where there is one, the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    #[error(
        "`{0}` is empty; give an address, a CIDR like 10.0.0.0/24, or a pattern like 197.210.77.*"
    )]
    Empty(String),
    #[error(
        "`{input}` matches every IPv4 address (0.0.0.0/0); refusing: name the networks you mean, e.g. 197.210.77.*"
    )]
    Everything { input: String },
    #[error("`{input}`: host bits set; did you mean {suggestion}")]
    HostBits { input: String, suggestion: IpNet },
    #[error("`{input}`: {reason}")]
    Invalid { input: String, reason: String },
}

/// Parses an allowlist entry into a normalised network:
/// `197.210.77.*` → `197.210.77.0/24`, `197.210.*` → `/16`, `10.*` → `/8`,
/// `2001:db8:*` → `2001:db8::/32`, `10.0.0.5` → `10.0.0.5/32`,
/// `2001:DB8::1` → `2001:db8::1/128`, CIDRs as given when their host bits
/// are clear. `*` alone is refused (it is 0.0.0.0/0); the literal
/// `0.0.0.0/0` parses, because callers must be able to read (and then
/// reject) such rules in security groups.
pub fn parse_cidr(s: &str) -> Result<IpNet, CidrError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(CidrError::Empty(s.to_string()));
    }
    let invalid = |reason: &str| CidrError::Invalid {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    if input.contains('*') {
        return parse_wildcard(input);
    }
    if let Some((addr, len)) = input.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| invalid("not an IP address before the `/`"))?;
        let len: u8 = len
            .parse()
            .map_err(|_| invalid("prefix length after `/` is not a number"))?;
        let net = IpNet::new(addr, len).map_err(|_| {
            invalid(if addr.is_ipv4() {
                "prefix length must be 0-32 for IPv4"
            } else {
                "prefix length must be 0-128 for IPv6"
            })
        })?;
        if net.network() != addr {
            return Err(CidrError::HostBits {
                input: input.to_string(),
                suggestion: net.trunc(),
            });
        }
        return Ok(net);
    }
    let addr: IpAddr = input.parse().map_err(|_| {
        invalid("not an IP address, a CIDR (10.0.0.0/24) or a pattern (197.210.77.*)")
    })?;
    Ok(IpNet::from(addr))
}

/// Trailing-wildcard patterns: every group after the first `*` must be `*`.
fn parse_wildcard(input: &str) -> Result<IpNet, CidrError> {
    let invalid = |reason: &str| CidrError::Invalid {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    if input == "*" || input.split('.').all(|p| p == "*") {
        return Err(CidrError::Everything {
            input: input.to_string(),
        });
    }
    if input.contains('/') {
        return Err(invalid("use either a wildcard or a /prefix, not both"));
    }
    let ipv6 = input.contains(':');
    let groups: Vec<&str> = input.split(if ipv6 { ':' } else { '.' }).collect();
    let fixed: Vec<&str> = groups.iter().take_while(|g| **g != "*").copied().collect();
    if groups[fixed.len()..].iter().any(|g| *g != "*") {
        return Err(invalid(
            "a wildcard may only stand for trailing parts, as in 197.210.77.* or 197.210.*",
        ));
    }
    if ipv6 {
        if fixed.len() >= 8 || fixed.iter().any(|g| g.is_empty()) {
            return Err(invalid(
                "IPv6 wildcards need full leading groups without `::`, as in 2001:db8:*",
            ));
        }
        let mut parts = [0u16; 8];
        for (i, g) in fixed.iter().enumerate() {
            parts[i] = u16::from_str_radix(g, 16)
                .ok()
                .filter(|_| g.len() <= 4)
                .ok_or_else(|| invalid(&format!("`{g}` is not an IPv6 group (hex 0-ffff)")))?;
        }
        let len = (fixed.len() * 16) as u8;
        let addr = Ipv6Addr::from(parts);
        return Ok(IpNet::new(IpAddr::V6(addr), len).expect("len <= 112"));
    }
    if groups.len() > 4 {
        return Err(invalid("an IPv4 address has four parts"));
    }
    let mut octets = [0u8; 4];
    for (i, g) in fixed.iter().enumerate() {
        octets[i] = g
            .parse()
            .ok()
            .filter(|_| !g.is_empty() && g.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| invalid(&format!("`{g}` is not a number 0-255")))?;
    }
    let len = (fixed.len() * 8) as u8;
    Ok(IpNet::new(IpAddr::V4(Ipv4Addr::from(octets)), len).expect("len <= 24"))
}

/// Is `inner` entirely inside one of the `allow` networks? (An IPv4 network
/// is never inside an IPv6 one, nor the reverse.)
pub fn within(inner: &IpNet, allow: &[IpNet]) -> bool {
    allow.iter().any(|a| a.contains(inner))
}

/// Is the address or network `addr` inside one of the `allow` networks?
pub fn contains(addr: &str, allow: &[IpNet]) -> Result<bool, CidrError> {
    Ok(within(&parse_cidr(addr)?, allow))
}

/// `openpay cidr PATTERN...` and `openpay cidr --contains ADDR CIDR...`.
pub fn command(args: &CidrArgs) -> anyhow::Result<Exit> {
    let nets: Vec<IpNet> = args
        .patterns
        .iter()
        .map(|p| parse_cidr(p))
        .collect::<Result<_, _>>()?;
    match &args.contains {
        None => {
            for net in &nets {
                output::line(net)?;
            }
            Ok(Exit::Success)
        }
        Some(addr) => {
            let inner = parse_cidr(addr).context("--contains")?;
            match nets.iter().find(|n| n.contains(&inner)) {
                Some(n) => {
                    output::line(format_args!("yes: {inner} is inside {n}"))?;
                    Ok(Exit::Success)
                }
                None => {
                    let list: Vec<String> = nets.iter().map(ToString::to_string).collect();
                    output::line(format_args!(
                        "no: {inner} is not inside {}",
                        list.join(", ")
                    ))?;
                    Ok(Exit::Findings)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_normalise() {
        let cases = [
            ("197.210.77.*", "197.210.77.0/24"),
            ("197.210.*", "197.210.0.0/16"),
            ("197.210.*.*", "197.210.0.0/16"),
            ("10.*", "10.0.0.0/8"),
            ("10.0.0.5", "10.0.0.5/32"),
            (" 10.0.0.0/24 ", "10.0.0.0/24"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("192.168.1.0/32", "192.168.1.0/32"),
            ("2001:DB8::1", "2001:db8::1/128"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:0db8:0000::/48", "2001:db8::/48"),
            ("2001:db8:*", "2001:db8::/32"),
            ("::/0", "::/0"),
        ];
        for (input, want) in cases {
            let got = parse_cidr(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), want, "{input}");
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_reason() {
        let cases = [
            ("*", "0.0.0.0/0"),
            ("*.*.*.*", "0.0.0.0/0"),
            ("10.0.0.5/24", "did you mean 10.0.0.0/24"),
            ("2001:db8::1/32", "did you mean 2001:db8::/32"),
            ("197.*.77.1", "trailing"),
            ("300.1.*", "0-255"),
            ("10.0.0.0/33", "0-32"),
            ("2001:db8::/129", "0-128"),
            ("10.0.0.0/x", "not a number"),
            ("10.*/8", "not both"),
            ("hello", "not an IP address"),
            ("1.2.3.4.*", "four parts"),
            ("2001::db8:*", "without `::`"),
            ("", "empty"),
        ];
        for (input, want) in cases {
            let e = parse_cidr(input).expect_err(input).to_string();
            assert!(e.contains(want), "{input}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn within_allowlist() {
        let allow = vec![
            parse_cidr("197.210.77.*").unwrap(),
            parse_cidr("2001:db8::/32").unwrap(),
        ];
        let cases = [
            ("197.210.77.5", true),
            ("197.210.77.0/25", true),
            ("197.210.77.0/24", true),
            ("197.210.0.0/16", false),
            ("197.210.78.1", false),
            ("0.0.0.0/0", false),
            ("::/0", false),
            ("2001:db8:1::/48", true),
            ("2001:db9::1", false),
        ];
        for (input, want) in cases {
            assert_eq!(within(&parse_cidr(input).unwrap(), &allow), want, "{input}");
        }
        assert!(!within(&parse_cidr("10.0.0.1").unwrap(), &[]));
        assert!(contains("197.210.77.200", &allow).unwrap());
        assert!(contains("nonsense", &allow).is_err());
    }
}
