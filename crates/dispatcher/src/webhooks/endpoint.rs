//! Where a webhook may go: http(s) with a host, and (unless
//! `dispatcher.allow_private_webhooks`) no private, loopback or link-local address,
//! neither written in the URL nor resolved from its host at delivery.

// The address rules are `switchyard_core::net`'s, shared with the workers' input fetches.

/// Check an endpoint at create time: http(s), a host, no literal private address
/// (unless allowed). Returns what is wrong.
pub fn check_endpoint(endpoint: &str, allow_private: bool) -> Result<(), String> {
    let u =
        url::Url::parse(endpoint).map_err(|e| format!("the endpoint is not a valid URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "the endpoint must be http or https, not {}",
            u.scheme()
        ));
    }
    if allow_private {
        return u
            .host_str()
            .map(|_| ())
            .ok_or_else(|| "the endpoint needs a host".to_string());
    }
    switchyard_core::net::check_host(&u, "the endpoint")?;
    Ok(())
}

/// Resolve an endpoint's host at delivery and refuse private addresses.
pub(super) async fn check_resolved(endpoint: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let u = url::Url::parse(endpoint).map_err(|e| e.to_string())?;
    let host = u.host_str().unwrap_or("");
    let port = u.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|_| "the endpoint's host does not resolve".to_string())?;
    for a in addrs {
        if switchyard_core::net::is_private(a.ip()) {
            return Err(format!(
                "the endpoint resolves to a private address ({})",
                a.ip()
            ));
        }
    }
    Ok(())
}

/// The host of an endpoint, for logs (never the path or query).
pub(super) fn endpoint_host(e: &str) -> String {
    url::Url::parse(e)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked() {
        assert!(check_endpoint("https://hooks.example.com/x", false).is_ok());
        for bad in [
            "ftp://x.com",
            "http://127.0.0.1/x",
            "http://10.1.2.3/",
            "http://[::1]/",
            "http://169.254.169.254/",
            "http://localhost:8080/",
            "not a url",
        ] {
            assert!(check_endpoint(bad, false).is_err(), "{bad}");
        }
        assert!(check_endpoint("http://127.0.0.1:9/x", true).is_ok());
    }
}
