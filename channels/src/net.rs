//! HTTP clients for URLs a tenant chose, behind the SSRF guard
//! ([`hermod_core::net::AddressPolicy`]): every address a name resolves to is checked
//! by the resolver that the connection then uses (no window for DNS rebinding), an
//! address literal is checked before the request, redirects are not followed and no
//! proxy from the environment is used.

use std::net::SocketAddr;
use std::sync::Arc;

use hermod_core::net::{AddressPolicy, BLOCKED};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The error a refused address gives (found again in reqwest's error chain).
#[derive(Debug)]
pub struct Blocked;

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(BLOCKED)
    }
}

impl std::error::Error for Blocked {}

/// Resolves with the system resolver, keeping only the addresses the policy permits.
struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if ok.is_empty() && !all.is_empty() {
                return Err(Box::new(Blocked) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// A client builder with the guard in place (add timeouts and build).
pub fn guarded_client(policy: Arc<AddressPolicy>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

/// Whether a request failed because the guard refused every address.
pub fn is_blocked(e: &reqwest::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.is::<Blocked>() {
            return true;
        }
        src = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver on loopback, refused by default and reached once allowed; a name
    /// that resolves to it (`localhost`) is refused at connect time.
    #[tokio::test]
    async fn loopback_is_refused_unless_allowed_and_names_are_checked_after_resolution() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        hermod_crypto::install_tls_provider();
        let strict = Arc::new(AddressPolicy::default());
        let client = guarded_client(strict.clone()).build().unwrap();
        let by_name = format!("http://localhost:{port}/hook");
        let e = client.post(&by_name).send().await.unwrap_err();
        assert!(is_blocked(&e), "a name resolving to loopback: {e:?}");
        let literal = format!("http://127.0.0.1:{port}/hook");
        assert!(strict.refuses_literal(&literal));
        assert!(strict.refuses_literal("http://[::ffff:127.0.0.1]/"));
        assert!(strict.refuses_literal("http://2130706433/"));
        assert!(!strict.refuses_literal("http://8.8.8.8/"));

        let open = Arc::new(AddressPolicy::loopback());
        let client = guarded_client(open.clone()).build().unwrap();
        assert!(!open.refuses_literal(&literal));
        let r = client.post(&literal).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 204);
        let r = client.post(&by_name).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 204);
    }
}
