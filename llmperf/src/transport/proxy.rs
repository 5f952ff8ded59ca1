//! Proxies from the environment, read the way curl reads them:
//! `HTTPS_PROXY` for `https://` targets, `HTTP_PROXY` for `http://` ones,
//! `ALL_PROXY` for both (each also in lower case, which wins), and
//! `NO_PROXY` for the hosts that bypass them. Only `http://` proxies are
//! supported: a plain target is sent to the proxy in absolute form, an
//! HTTPS target through a `CONNECT` tunnel, with `Proxy-Authorization:
//! Basic` when the proxy URL carries a user and password. A variable llmperf
//! cannot use (a `socks5://` or `https://` proxy, a malformed value) fails
//! only the requests that would go through it, each with a `connect` error
//! naming the variable, never its value.

use std::net::IpAddr;

use base64::Engine as _;

/// A proxy server requests go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyServer {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `Proxy-Authorization` value, from the proxy URL's user and password.
    pub(crate) authorization: Option<String>,
}

impl ProxyServer {
    /// Parses `http://[user:password@]host[:port]` (a URL without a scheme
    /// is taken as `http://`).
    fn parse(variable: &str, value: &str) -> Result<ProxyServer, String> {
        let with_scheme = if value.contains("://") {
            value.to_string()
        } else {
            format!("http://{value}")
        };
        // The value may hold a password: errors name the variable, never the value.
        let url = reqwest::Url::parse(&with_scheme)
            .map_err(|_| format!("{variable} is not a proxy URL (expected http://host:port)"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "{variable} uses a {}:// proxy; llmperf supports http:// proxies (HTTPS targets go through a CONNECT tunnel)",
                url.scheme()
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{variable} has no host (expected http://host:port)"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let authorization = (!url.username().is_empty()).then(|| {
            let user = percent_decode(url.username());
            let password = percent_decode(url.password().unwrap_or(""));
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {token}")
        });
        Ok(ProxyServer {
            host,
            port: url.port_or_known_default().unwrap_or(80),
            authorization,
        })
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(a), Some(b)) if hex(a).is_some() && hex(b).is_some() => {
                out.push((hex(a).unwrap_or(0) * 16 + hex(b).unwrap_or(0)) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Hosts that bypass the proxies (`NO_PROXY`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NoProxy {
    all: bool,
    domains: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    /// `*`, host names (which match themselves and their subdomains, with or
    /// without a leading dot), IP addresses and CIDR blocks, comma separated.
    fn parse(value: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                no_proxy.all = true;
            } else if let Some((ip, bits)) = entry.split_once('/') {
                if let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                    no_proxy.networks.push((ip, bits));
                }
            } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                no_proxy.networks.push((ip, bits));
            } else {
                // A port in an entry (`example.com:8080`) is ignored, as curl does.
                let name = entry.split(':').next().unwrap_or(entry);
                no_proxy
                    .domains
                    .push(name.trim_start_matches('.').to_ascii_lowercase());
            }
        }
        no_proxy
    }

    fn bypasses(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self
                .networks
                .iter()
                .any(|(network, bits)| in_network(ip, *network, *bits));
        }
        self.domains.iter().any(|domain| {
            host == *domain
                || host
                    .strip_suffix(domain.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

fn in_network(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) => {
            let bits = u32::from(bits.min(32));
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) => {
            let bits = u32::from(bits.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

/// A configured proxy, or why the variable that names it cannot be used.
type Configured = Option<Result<ProxyServer, String>>;

/// The proxies in force for a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Proxies {
    http: Configured,
    https: Configured,
    no_proxy: NoProxy,
}

impl Proxies {
    /// No proxy at all (the built-in endpoint, whose loopback traffic must
    /// never leave through one).
    pub(crate) fn none() -> Proxies {
        Proxies::default()
    }

    /// `url` for every request.
    pub(crate) fn explicit(url: &str) -> Result<Proxies, String> {
        let proxy = ProxyServer::parse("the proxy (--proxy)", url)?;
        Ok(Proxies {
            http: Some(Ok(proxy.clone())),
            https: Some(Ok(proxy)),
            no_proxy: NoProxy::default(),
        })
    }

    /// The proxies the environment configures.
    pub(crate) fn from_env() -> Proxies {
        Proxies::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Proxies {
        let first = |names: &[&'static str]| -> Option<(&'static str, String)> {
            names.iter().find_map(|name| {
                lookup(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (*name, v.trim().to_string()))
            })
        };
        let parse = |found: Option<(&str, String)>| {
            found.map(|(name, value)| ProxyServer::parse(name, &value))
        };
        let all = first(&["all_proxy", "ALL_PROXY"]);
        // Under CGI, HTTP_PROXY can be set by a request header (httpoxy):
        // only the lower-case name is trusted there, as curl does.
        let http_names: &[&'static str] = if lookup("REQUEST_METHOD").is_some() {
            &["http_proxy"]
        } else {
            &["http_proxy", "HTTP_PROXY"]
        };
        let http = first(http_names).or_else(|| all.clone());
        let https = first(&["https_proxy", "HTTPS_PROXY"]).or(all);
        let no_proxy = first(&["no_proxy", "NO_PROXY"])
            .map(|(_, value)| NoProxy::parse(&value))
            .unwrap_or_default();
        Proxies {
            http: parse(http),
            https: parse(https),
            no_proxy,
        }
    }

    /// The proxy for a request to `host` (`https`: an HTTPS target), or why
    /// the variable that names it cannot be used.
    pub(crate) fn for_target(
        &self,
        https: bool,
        host: &str,
    ) -> Result<Option<&ProxyServer>, String> {
        let proxy = if https { &self.https } else { &self.http };
        match proxy {
            Some(_) if self.no_proxy.bypasses(host) => Ok(None),
            Some(Ok(proxy)) => Ok(Some(proxy)),
            Some(Err(why)) => Err(why.clone()),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(vars: &[(&str, &str)]) -> Proxies {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Proxies::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn scheme_specific_variables_win_over_all_proxy_and_no_proxy_bypasses() {
        let p = proxies(&[
            ("HTTPS_PROXY", "http://user:p%40ss@proxy.corp:3128"),
            ("ALL_PROXY", "other:8080"),
            ("NO_PROXY", "localhost, .internal.example,10.0.0.0/8,::1"),
        ]);
        let https = p.for_target(true, "api.openai.com").unwrap().unwrap();
        assert_eq!((https.host.as_str(), https.port), ("proxy.corp", 3128));
        let token = base64::engine::general_purpose::STANDARD.encode("user:p@ss");
        assert_eq!(
            https.authorization.as_deref(),
            Some(format!("Basic {token}").as_str())
        );
        let http = p.for_target(false, "gpu-box").unwrap().unwrap();
        assert_eq!((http.host.as_str(), http.port), ("other", 8080));
        assert!(p.for_target(true, "localhost").unwrap().is_none());
        assert!(p
            .for_target(true, "vllm.internal.example")
            .unwrap()
            .is_none());
        assert!(p.for_target(true, "internal.example").unwrap().is_none());
        assert!(p.for_target(true, "notinternal.example").unwrap().is_some());
        assert!(p.for_target(false, "10.1.2.3").unwrap().is_none());
        assert!(p.for_target(false, "11.1.2.3").unwrap().is_some());
        assert!(p.for_target(false, "[::1]").unwrap().is_none());
    }

    #[test]
    fn a_proxy_llmperf_cannot_use_fails_only_the_requests_it_serves_naming_the_variable() {
        let p = proxies(&[
            ("HTTPS_PROXY", "socks5://u:secret@h:1"),
            ("HTTP_PROXY", "http://u:secret@:1"),
            ("NO_PROXY", "inside.example"),
        ]);
        let error = p.for_target(true, "api.openai.com").unwrap_err();
        assert!(
            error.contains("HTTPS_PROXY") && error.contains("socks5"),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
        let error = p.for_target(false, "gpu-box").unwrap_err();
        assert!(
            error.contains("HTTP_PROXY") && !error.contains("secret"),
            "{error}"
        );
        // A bypassed host never meets the bad variable.
        assert!(p.for_target(true, "inside.example").unwrap().is_none());
        assert_eq!(proxies(&[]), Proxies::none());
        let star = proxies(&[("http_proxy", "p:1"), ("no_proxy", "*")]);
        assert!(star.for_target(false, "anything").unwrap().is_none());
    }

    #[test]
    fn under_cgi_the_upper_case_http_proxy_is_not_trusted() {
        let p = proxies(&[("HTTP_PROXY", "evil:1"), ("REQUEST_METHOD", "GET")]);
        assert!(p.for_target(false, "host").unwrap().is_none());
    }
}
