//! The client address behind trusted proxies: arbitrary `X-Forwarded-For`
//! values, peers and trusted networks. Never a panic; an untrusted peer is
//! always the answer (the header cannot be spoofed); the answer is the peer
//! or one of the header's addresses.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use latchkey::domain::net::{TrustedProxies, canonical};
use libfuzzer_sys::fuzz_target;

fn ip(bytes: &[u8]) -> IpAddr {
    if bytes.first().is_some_and(|b| b % 2 == 0) && bytes.len() >= 17 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&bytes[1..17]);
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        let mut a = [0u8; 4];
        for (slot, b) in a.iter_mut().zip(bytes.iter().skip(1)) {
            *slot = *b;
        }
        IpAddr::V4(Ipv4Addr::from(a))
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 40 {
        return;
    }
    let (fixed, rest) = data.split_at(40);
    let peer = ip(&fixed[..20]);
    let prefix = fixed[20];
    let net_ip = ip(&fixed[21..40]);
    let max = if net_ip.is_ipv4() { 32 } else { 128 };
    let net = ipnet::IpNet::new(net_ip, prefix % (max + 1))
        .unwrap()
        .trunc();
    let proxies = TrustedProxies::new(vec![net]);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let headers: Vec<&str> = text.split('\n').collect();
    let client = proxies.client_ip(peer, headers.iter().copied());
    let peer_c = canonical(peer);
    if !net.contains(&peer_c) {
        assert_eq!(client, peer_c, "an untrusted peer's header is ignored");
    } else if client != peer_c {
        let listed = headers
            .iter()
            .flat_map(|h| h.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .any(|a| canonical(a) == client);
        assert!(listed, "{client} is neither the peer nor in the header");
    }
});
