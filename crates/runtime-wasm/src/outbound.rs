//! Outgoing HTTP from guests (`wasi:http/outgoing-handler`): sent as
//! `wasmtime serve` sends it, except that by default a request to the host's
//! loopback, a link-local address (cloud metadata services live there) or an
//! unspecified address is refused with `HTTP-request-denied`, so a guest
//! cannot reach the server's own listener, a local database or any daemon
//! that trusts 127.0.0.0/8. `--allow-function-loopback` lifts the refusal.
//!
//! The name is resolved and every address checked before the request is
//! sent; the send resolves it again, so a name whose answers change between
//! the two (DNS rebinding) is not covered yet.

use http_body_util::BodyExt;
use std::future::Future;
use std::net::IpAddr;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The outgoing-request policy of one guest.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outbound {
    pub allow_loopback: bool,
}

/// Whether a guest may not connect to `ip` (unless loopback is allowed).
pub fn refused(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_loopback() || a.is_link_local() || a.is_unspecified(),
        IpAddr::V6(a) => {
            a.is_loopback()
                || a.is_unspecified()
                || (a.segments()[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped().is_some_and(|v4| refused(IpAddr::V4(v4)))
        }
    }
}

type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let allow_loopback = self.allow_loopback;
        drop(fut);
        Box::new(async move {
            if !allow_loopback {
                check_destination(request.uri()).await?;
            }
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

async fn check_destination(uri: &http::Uri) -> Result<(), Error> {
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| Error::DnsError {
            rcode: None,
            info_code: None,
        })?
        .collect();
    if addrs.iter().any(|a| refused(a.ip())) {
        tracing::info!(%host, "refused a guest's outgoing request to a loopback or link-local address");
        return Err(Error::HttpRequestDenied);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_link_local_and_unspecified_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.3.4.5",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(refused(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "10.0.0.1", "2606:2800:220:1::1"] {
            assert!(!refused(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn names_are_checked_by_what_they_resolve_to() {
        let denied = check_destination(&"http://localhost:8080/".parse().unwrap()).await;
        assert!(
            matches!(denied, Err(Error::HttpRequestDenied)),
            "{denied:?}"
        );
        let denied = check_destination(&"http://[::1]/".parse().unwrap()).await;
        assert!(
            matches!(denied, Err(Error::HttpRequestDenied)),
            "{denied:?}"
        );
        let ok = check_destination(&"http://10.1.2.3:81/".parse().unwrap()).await;
        assert!(ok.is_ok(), "{ok:?}");
    }
}
