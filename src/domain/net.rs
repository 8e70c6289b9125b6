//! Allowed-IP rules and the client address.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

/// Most entries one key may list.
pub const MAX_ALLOWED_IPS: usize = 100;

/// One allowed address or CIDR range. A bare address is a /32 (or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AllowedIp(IpNet);

impl AllowedIp {
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("an empty entry is not an address".into());
        }
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(AllowedIp(IpNet::from(canonical(addr))));
        }
        let net: IpNet = s.parse().map_err(|_| {
            format!("`{s}` is not an IPv4/IPv6 address or CIDR range (e.g. 203.0.113.7, 198.51.100.0/24, 2001:db8::/32)")
        })?;
        if net.trunc() != net {
            return Err(format!(
                "`{s}` has host bits set: did you mean {} (the whole range) or {} (one address)?",
                net.trunc(),
                net.addr()
            ));
        }
        Ok(AllowedIp(net))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl std::fmt::Display for AllowedIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Single addresses print without the /32 or /128 suffix.
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Serialize for AllowedIp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A key's allowed IPs; empty allows every address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AllowedIps(Vec<AllowedIp>);

impl AllowedIps {
    /// Parses every entry; on failure returns one message per bad entry, each
    /// with its position (1-based) so a form can show it next to the line.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, Vec<(usize, String)>> {
        let mut out = Vec::with_capacity(entries.len());
        let mut errors = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match AllowedIp::parse(entry.as_ref()) {
                Ok(ip) if !out.contains(&ip) => out.push(ip),
                Ok(_) => {} // duplicates are harmless: keep the first
                Err(e) => errors.push((i + 1, e)),
            }
        }
        if out.len() > MAX_ALLOWED_IPS {
            errors.push((
                0,
                format!("at most {MAX_ALLOWED_IPS} entries; use CIDR ranges to cover more"),
            ));
        }
        if errors.is_empty() {
            Ok(AllowedIps(out))
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|net| net.contains(ip))
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Whether this list allows no address that `outer` refuses: `outer` is
    /// empty (any address), or this list is non-empty and every entry lies
    /// inside one of `outer`'s ranges.
    pub fn within(&self, outer: &AllowedIps) -> bool {
        outer.is_empty()
            || (!self.is_empty()
                && self
                    .0
                    .iter()
                    .all(|inner| outer.0.iter().any(|o| o.0.contains(&inner.0))))
    }
}

/// IPv4-mapped IPv6 (`::ffff:203.0.113.7`, what a dual-stack socket reports)
/// compares as the IPv4 address it carries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The networks whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address: the TCP peer, unless the peer is a trusted proxy; then
    /// the right-most `X-Forwarded-For` entry that is not itself trusted. A header
    /// from an untrusted peer is ignored, so it cannot be spoofed.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = canonical(ip);
                    if !self.trusts(client) {
                        return client;
                    }
                }
                // An unparseable hop was written by someone we do not trust:
                // stop at the last address we could vouch for.
                Err(_) => return client,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_ranges_of_both_families_are_accepted() {
        let ips =
            AllowedIps::parse(&["203.0.113.7", "198.51.100.0/24", "2001:db8::/32", "::1"]).unwrap();
        assert_eq!(
            ips.to_strings(),
            ["203.0.113.7", "198.51.100.0/24", "2001:db8::/32", "::1"]
        );
        assert!(ips.allows(ip("203.0.113.7")));
        assert!(!ips.allows(ip("203.0.113.8")));
        assert!(ips.allows(ip("198.51.100.255")));
        assert!(ips.allows(ip("2001:db8:1::5")));
        assert!(!ips.allows(ip("2001:db9::1")));
        assert!(
            ips.allows(ip("::ffff:198.51.100.9")),
            "v4-mapped v6 matches v4 rules"
        );
    }

    #[test]
    fn a_list_is_within_another_when_every_entry_lies_inside_one_of_its_ranges() {
        let outer = AllowedIps::parse(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        let any = AllowedIps::default();
        assert!(
            AllowedIps::parse(&["10.9.9.9", "10.1.0.0/16"])
                .unwrap()
                .within(&outer)
        );
        assert!(
            AllowedIps::parse(&["2001:db8:1::/48"])
                .unwrap()
                .within(&outer)
        );
        assert!(!AllowedIps::parse(&["10.0.0.0/7"]).unwrap().within(&outer));
        assert!(
            !AllowedIps::parse(&["10.1.1.1", "192.0.2.1"])
                .unwrap()
                .within(&outer)
        );
        assert!(!any.within(&outer), "any address is looser than a list");
        assert!(any.within(&any));
        assert!(outer.within(&any));
    }

    #[test]
    fn empty_list_allows_everyone() {
        assert!(AllowedIps::default().allows(ip("192.0.2.1")));
    }

    #[test]
    fn bad_entries_are_reported_with_their_line() {
        let errs =
            AllowedIps::parse(&["10.0.0.1", "10.0.0.300", "10.0.0.5/24", "nope"]).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), [2, 3, 4]);
        assert!(errs[1].1.contains("10.0.0.0/24"), "{}", errs[1].1);
    }

    #[test]
    fn client_ip_is_the_peer_unless_the_peer_is_trusted() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("192.0.2.1"), ["6.6.6.6"].into_iter()),
            ip("192.0.2.1")
        );

        let lb = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        // Spoofed left-most entry is skipped; right-most untrusted wins.
        assert_eq!(
            lb.client_ip(
                ip("10.0.0.2"),
                ["6.6.6.6, 203.0.113.9, 10.1.1.1"].into_iter()
            ),
            ip("203.0.113.9")
        );
        // Several headers are one list.
        assert_eq!(
            lb.client_ip(ip("10.0.0.2"), ["6.6.6.6", "203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
        // No header: the proxy itself.
        assert_eq!(
            lb.client_ip(ip("10.0.0.2"), std::iter::empty()),
            ip("10.0.0.2")
        );
        // Garbage stops the walk.
        assert_eq!(
            lb.client_ip(ip("10.0.0.2"), ["1.2.3.4, junk"].into_iter()),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn client_ip_handles_ipv6() {
        let lb = TrustedProxies::new(vec!["fd00::/8".parse().unwrap()]);
        assert_eq!(
            lb.client_ip(ip("fd00::1"), ["2001:db8::7"].into_iter()),
            ip("2001:db8::7")
        );
        assert_eq!(
            lb.client_ip(ip("2001:db8::9"), ["2001:db8::7"].into_iter()),
            ip("2001:db8::9")
        );
    }
}
