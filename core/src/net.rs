//! Which addresses Hermod may connect to on a tenant's behalf (the SSRF guard).
//!
//! Webhook endpoints, `callback_url`s and push relays are URLs that a tenant (or
//! whoever holds its key) chooses. Without a guard, a tenant could make the server POST
//! to its own loopback, to the cloud metadata service (169.254.169.254) or to hosts
//! inside the operator's network, and read what happened from the delivery log. The
//! rule: no loopback, private, link-local, CGNAT, multicast, unspecified, reserved or
//! documentation address, in IPv4 or IPv6, in any of the IPv6 forms that carry an IPv4
//! address (mapped, compatible, NAT64, 6to4), unless the operator allows its range
//! (`[webhooks] allow_private`). Checked on every address a name resolves to, at
//! connect time (see `hermod_channels::net`), and on registration for what is
//! obviously internal (an address literal, `localhost`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// What a refused connection is recorded as.
pub const BLOCKED: &str = "blocked_address";

/// The addresses outside the public internet that the operator allows anyway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    /// `allow`: CIDR ranges (`10.1.0.0/16`) or single addresses (`127.0.0.1`).
    pub fn new(allow: &[String]) -> Result<Self, crate::error::ConfigError> {
        let allow = allow
            .iter()
            .map(|a| {
                let a = a.trim();
                a.parse::<IpNet>()
                    .or_else(|_| a.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| {
                        crate::error::ConfigError::new(format!(
                            "allow_private: `{a}` is not an address or CIDR range"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { allow })
    }

    /// Loopback only (`127.0.0.1/32`, `::1/128`): the demo's receivers.
    pub fn loopback() -> Self {
        Self {
            allow: vec![
                IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
        }
    }

    /// Whether a connection to `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_internal(ip) || self.allow.iter().any(|n| n.contains(&ip))
    }

    /// Whether an http(s) URL obviously points inside: its host is an address this
    /// policy refuses, or `localhost`. (A name that resolves inside is refused when
    /// connecting; names are not resolved on registration, as the answer may change.)
    pub fn refuses_url(&self, url: &str) -> bool {
        let Ok(u) = url::Url::parse(url) else {
            return true;
        };
        if let Some(ip) = literal_host(&u) {
            return !self.permits(ip);
        }
        match u.host_str() {
            None => true,
            Some(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                let local = d == "localhost" || d.ends_with(".localhost");
                local && !self.permits(IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
        }
    }

    /// Whether a URL's host is an address literal this policy refuses (a name is
    /// checked when it is resolved; an unparsable URL is left to the HTTP client).
    pub fn refuses_literal(&self, url: &str) -> bool {
        url::Url::parse(url)
            .ok()
            .and_then(|u| literal_host(&u))
            .is_some_and(|ip| !self.permits(ip))
    }
}

/// The address of a URL whose host is an IPv4 or IPv6 literal (in any form the URL
/// parser normalises: `2130706433`, `0x7f.1`, `[::ffff:7f00:1]`).
fn literal_host(u: &url::Url) -> Option<IpAddr> {
    match u.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// The IPv4 address an IPv6 address stands for (mapped `::ffff:a.b.c.d`, compatible
/// `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`), else itself.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        // IPv4-compatible (deprecated); `::` and `::1` are themselves.
        return IpAddr::V4(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(tail);
    }
    if s[0] == 0x2002 {
        return IpAddr::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    ip
}

/// Any address outside the public unicast internet.
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_unspecified()
                || a == 0 // "this network"
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 192 && b == 0 && c == 2) // documentation
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113)
                || v4.is_multicast()
                || a >= 240 // reserved and broadcast
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_unspecified()
                || v6.is_loopback()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || v6.is_multicast()
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_in_every_form_are_refused() {
        let p = AddressPolicy::default();
        for a in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a00:1::1",
        ] {
            assert!(!p.permits(ip(a)), "{a} must be refused");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(p.permits(ip(a)), "{a} is public");
        }
    }

    #[test]
    fn the_operator_allows_ranges() {
        let p = AddressPolicy::new(&[
            "127.0.0.1/32".into(),
            "10.1.0.0/16".into(),
            "fd00::5".into(),
        ])
        .unwrap();
        assert!(p.permits(ip("127.0.0.1")));
        assert!(
            p.permits(ip("::ffff:127.0.0.1")),
            "mapped forms count as their IPv4"
        );
        assert!(!p.permits(ip("127.0.0.2")));
        assert!(p.permits(ip("10.1.200.3")));
        assert!(!p.permits(ip("10.2.0.1")));
        assert!(p.permits(ip("fd00::5")));
        assert!(!p.permits(ip("fd00::6")));
        assert!(AddressPolicy::new(&["10.0.0.0/33".into()]).is_err());
        assert!(AddressPolicy::new(&["example.com".into()]).is_err());
    }

    #[test]
    fn obviously_internal_urls_are_refused_on_registration() {
        let p = AddressPolicy::default();
        for u in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://localhost/x",
            "http://LOCALHOST./x",
            "http://api.localhost/x",
            "http://[::ffff:7f00:1]/",
            "http://10.0.0.1/",
            "not a url",
        ] {
            assert!(p.refuses_url(u), "{u}");
        }
        assert!(!p.refuses_url("https://hooks.example.com/x"));
        assert!(!p.refuses_url("http://8.8.8.8/x"));
        // A name is resolved only when connecting.
        assert!(!p.refuses_url("http://internal.example/x"));
        let lo = AddressPolicy::loopback();
        assert!(!lo.refuses_url("http://127.0.0.1:8089/cb"));
        assert!(!lo.refuses_url("http://localhost:8089/cb"));
        assert!(lo.refuses_url("http://169.254.169.254/"));
    }
}
