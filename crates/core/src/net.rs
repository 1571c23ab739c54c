//! Which addresses a URL given by a client may reach: webhook endpoints (the dispatcher)
//! and input files (the workers) are refused in private, loopback, link-local and
//! carrier-grade NAT ranges unless the operator allows them. Pure: resolving a name is
//! the caller's (each checks every address the name resolves to).

use std::net::IpAddr;

/// True for an address a client's URL must not reach: private, loopback, link-local,
/// unspecified, broadcast, CGNAT (100.64/10), IPv6 unique-local, and IPv4-mapped forms.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.octets()[0] == 100 && (64..128).contains(&v.octets()[1])
        }
        IpAddr::V6(v) => {
            v.is_loopback()
                || v.is_unspecified()
                || (v.segments()[0] & 0xfe00) == 0xfc00
                || (v.segments()[0] & 0xffc0) == 0xfe80
                || v.to_ipv4_mapped()
                    .is_some_and(|m| is_private(IpAddr::V4(m)))
        }
    }
}

/// Check an http(s) URL's host as written: `localhost` names and literal private
/// addresses are refused (a name is checked again once resolved). `what` names the URL
/// in the message ("the endpoint", "the image").
pub fn check_host(url: &url::Url, what: &str) -> Result<(), String> {
    let host = url
        .host_str()
        .ok_or_else(|| format!("{what} needs a host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") || bare.ends_with(".localhost") {
        return Err(format!(
            "{what} points at this machine (localhost); use a public address"
        ));
    }
    if let Ok(ip) = bare.parse::<IpAddr>()
        && is_private(ip)
    {
        return Err(format!(
            "{what} is a private, loopback or link-local address ({ip}); use a public address"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "100.128.0.1", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(check_host(&u("http://localhost:8080/x"), "the image").is_err());
        assert!(check_host(&u("http://[::1]/x"), "the image").is_err());
        assert!(check_host(&u("https://cdn.example.com/x.png"), "the image").is_ok());
    }
}
