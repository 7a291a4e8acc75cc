//! The client IP: the peer address, or a header set by a trusted reverse proxy
//! (docker_auth's `real_ip_header` / `real_ip_pos`, without its panic on a bad position).

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// Where the client address comes from.
#[derive(Clone, Debug, Default)]
pub struct ClientIpConfig {
    header: Option<HeaderName>,
    position: isize,
    trusted_proxies: Vec<IpNet>,
}

/// Why the client address could not be determined (answered 400).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientIpError {
    /// The configured header is missing on a request from a trusted proxy.
    #[error("client address not provided: header {0} is missing")]
    MissingHeader(String),
    /// `real_ip_pos` points outside the header's list.
    #[error(
        "client address not provided: header {header} has {len} entries, position {position} is out of range"
    )]
    OutOfRange {
        /// The header name.
        header: String,
        /// How many comma-separated entries it had.
        len: usize,
        /// The configured position.
        position: isize,
    },
    /// The selected entry is not an IP address.
    #[error("client address in header {0} is not an IP address")]
    Invalid(String),
}

impl ClientIpConfig {
    /// Use the peer address only (the default).
    #[must_use]
    pub fn peer() -> Self {
        Self::default()
    }

    /// Take the address from `header` (e.g. `X-Forwarded-For`), entry `position` of its
    /// comma-separated list (negative counts from the end: `-1` is the last, which is the one
    /// your own proxy appended), but only on requests whose peer is a trusted proxy. The
    /// trusted proxies default to loopback; set them with [`trust`](Self::trust).
    #[must_use]
    pub fn from_header(header: HeaderName, position: isize) -> Self {
        Self {
            header: Some(header),
            position,
            trusted_proxies: vec![
                "127.0.0.0/8"
                    .parse()
                    .unwrap_or_else(|_| IpNet::from(IpAddr::from([127, 0, 0, 1]))),
                IpNet::from(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ],
        }
    }

    /// Replaces the list of trusted proxies.
    #[must_use]
    pub fn trust(mut self, proxies: Vec<IpNet>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Determines the client address. `peer` is `None` on a Unix socket, whose peer is
    /// always a local proxy and therefore trusted.
    pub fn resolve(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> Result<Option<IpAddr>, ClientIpError> {
        let Some(name) = &self.header else {
            return Ok(peer);
        };
        if let Some(ip) = peer {
            let ip = canonical(ip);
            if !self.trusted_proxies.iter().any(|n| n.contains(&ip)) {
                return Ok(Some(ip));
            }
        }
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if values.is_empty() {
            return Err(ClientIpError::MissingHeader(name.to_string()));
        }
        let len = values.len();
        let index = if self.position < 0 {
            len.checked_sub(self.position.unsigned_abs())
        } else {
            Some(self.position.unsigned_abs()).filter(|&i| i < len)
        };
        let Some(entry) = index.and_then(|i| values.get(i)) else {
            return Err(ClientIpError::OutOfRange {
                header: name.to_string(),
                len,
                position: self.position,
            });
        };
        parse_ip(entry)
            .map(|ip| Some(canonical(ip)))
            .ok_or_else(|| ClientIpError::Invalid(name.to_string()))
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse().ok())
        })
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for s in v {
            h.append("x-forwarded-for", s.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn peer_only_by_default() {
        let c = ClientIpConfig::peer();
        assert_eq!(
            c.resolve(Some(ip("10.0.0.1")), &headers(&["1.2.3.4"]))
                .unwrap(),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn header_from_trusted_proxy_with_positions() {
        let c = ClientIpConfig::from_header(HeaderName::from_static("x-forwarded-for"), -1);
        let h = headers(&["1.1.1.1, 2.2.2.2", "3.3.3.3"]);
        assert_eq!(
            c.resolve(Some(ip("127.0.0.1")), &h).unwrap(),
            Some(ip("3.3.3.3"))
        );
        let c0 = ClientIpConfig::from_header(HeaderName::from_static("x-forwarded-for"), 0);
        assert_eq!(
            c0.resolve(Some(ip("::1")), &h).unwrap(),
            Some(ip("1.1.1.1"))
        );
        let c2 = ClientIpConfig::from_header(HeaderName::from_static("x-forwarded-for"), -3);
        assert_eq!(c2.resolve(None, &h).unwrap(), Some(ip("1.1.1.1")));
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let c = ClientIpConfig::from_header(HeaderName::from_static("x-forwarded-for"), 0);
        assert_eq!(
            c.resolve(Some(ip("203.0.113.9")), &headers(&["127.0.0.1"]))
                .unwrap(),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn errors_instead_of_panics() {
        let c = ClientIpConfig::from_header(HeaderName::from_static("x-forwarded-for"), 5);
        assert!(matches!(
            c.resolve(Some(ip("127.0.0.1")), &headers(&["1.1.1.1"])),
            Err(ClientIpError::OutOfRange {
                len: 1,
                position: 5,
                ..
            })
        ));
        let c = ClientIpConfig::from_header(HeaderName::from_static("x-forwarded-for"), -2);
        assert!(matches!(
            c.resolve(None, &headers(&["1.1.1.1"])),
            Err(ClientIpError::OutOfRange { .. })
        ));
        assert!(matches!(
            c.resolve(None, &headers(&[])),
            Err(ClientIpError::MissingHeader(_))
        ));
        let c = ClientIpConfig::from_header(HeaderName::from_static("x-forwarded-for"), 0);
        assert!(matches!(
            c.resolve(None, &headers(&["nonsense"])),
            Err(ClientIpError::Invalid(_))
        ));
        assert_eq!(
            c.resolve(None, &headers(&["[::ffff:1.2.3.4]:80"])).unwrap(),
            Some(ip("1.2.3.4"))
        );
    }
}
