//! Who the client is: the TCP peer, or, when the peer is one of
//! `TRUSTED_PROXIES`, the right-most address of `X-Forwarded-For` (all such
//! headers, joined in order) that is not a trusted proxy; the left-most when
//! all are. Addresses to the left of the first untrusted one are the
//! client's to write, so they are never believed. IPv4-mapped IPv6
//! addresses count as IPv4 (the rate limit then groups IPv6 by /64).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use poem::http::HeaderValue;

#[derive(Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets.into())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer` with these `X-Forwarded-For` values.
    pub fn client<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded: impl Iterator<Item = &'a HeaderValue>,
    ) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut chain = Vec::new();
        for value in forwarded {
            // A header that is not text is no proxy's: believe only the peer.
            let Ok(value) = value.to_str() else {
                return Some(peer);
            };
            chain.extend(value.split(',').map(str::trim).filter(|e| !e.is_empty()));
        }
        let mut leftmost = None;
        for entry in chain.iter().rev() {
            // Garbage where a trusted proxy's entry should be: the peer it is.
            let Some(ip) = parse(entry) else {
                return Some(peer);
            };
            if !self.trusts(ip) {
                return Some(ip);
            }
            leftmost = Some(ip);
        }
        Some(leftmost.unwrap_or(peer))
    }
}

/// An address as proxies write it: bare, or with a port (`[::1]:80`, `1.2.3.4:5`).
fn parse(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(canonical)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn client(proxies: &TrustedProxies, peer: &str, headers: &[&str]) -> String {
        let values: Vec<HeaderValue> = headers
            .iter()
            .map(|h| HeaderValue::from_str(h).unwrap())
            .collect();
        proxies
            .client(Some(peer.parse().unwrap()), values.iter())
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let lb = proxies(&["10.0.0.0/8"]);
        assert_eq!(client(&lb, "10.0.0.1", &["203.0.113.5"]), "203.0.113.5");
        assert_eq!(
            client(&lb, "10.0.0.1", &["1.1.1.1, 203.0.113.5, 10.0.0.2"]),
            "203.0.113.5"
        );
        assert_eq!(
            client(&lb, "10.0.0.1", &["1.1.1.1", "203.0.113.5, 10.0.0.2"]),
            "203.0.113.5",
            "headers joined in order"
        );
        assert_eq!(
            client(&lb, "10.0.0.1", &["10.0.0.3, 10.0.0.2"]),
            "10.0.0.3",
            "all trusted: the left-most"
        );
        assert_eq!(client(&lb, "10.0.0.1", &[]), "10.0.0.1");
        assert_eq!(
            client(&lb, "10.0.0.1", &["::ffff:203.0.113.9"]),
            "203.0.113.9"
        );
        assert_eq!(
            client(&lb, "::ffff:10.0.0.1", &["203.0.113.5"]),
            "203.0.113.5",
            "a mapped peer is IPv4"
        );
        assert_eq!(
            client(&lb, "10.0.0.1", &["[2001:db8::1]:443"]),
            "2001:db8::1"
        );
        assert_eq!(client(&lb, "10.0.0.1", &["1.1.1.1, garbage"]), "10.0.0.1");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        for lb in [proxies(&[]), proxies(&["10.0.0.0/8"])] {
            assert_eq!(
                client(&lb, "198.51.100.1", &["203.0.113.5"]),
                "198.51.100.1"
            );
        }
    }
}
