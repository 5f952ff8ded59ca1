//! Fakes of the Google services Application Default Credentials call, on
//! loopback.
//!
//! - [`token_server`], [`token_series`]: an OAuth token endpoint (an
//!   `authorized_user` file's `token_uri`) or the metadata server's token
//!   path (`GCE_METADATA_HOST`).
//! - [`sts`]: the Security Token Service's token exchange, an
//!   `external_account` file's `token_url` (workload identity federation).
//! - [`impersonation`]: IAM Credentials' `generateAccessToken`, an
//!   `external_account` file's `service_account_impersonation_url`.
//! - [`ProxyTrap`]: a proxy that forwards nothing and keeps every request
//!   it gets. With the proxy variables pointing at it and `NO_PROXY`
//!   sparing loopback, any request the library makes to anything but the
//!   fakes (googleapis.com) is caught there instead of leaving the machine.
//! - [`TEST_KEY_PEM`] and [`verified_jwt`]: a service-account key made for
//!   these tests, and the check a Google service makes of a JWT it signed.
//!
//! The counts of the fakes are lower bounds of what one test caused:
//! credentials of earlier tests live on in the process and, after a
//! failure, are built again from whatever the environment then says, this
//! test's files and fakes included. So tests check what requests carried.
//!
//! Included by test files with `mod google_fakes;` (after `mod raw_server;`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;

use crate::raw_server::{header_values, json_body, serve_each as serve, Ledger};

/// The scope llmperf asks Application Default Credentials for.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The scope of an STS token that is only exchanged again, for a service
/// account's (impersonation).
pub const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";
/// The subject token type of an OIDC ID token (Kubernetes, GitHub).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// An RSA-2048 private key (PKCS#8 PEM) generated for these tests with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`. It
/// belongs to no service account and opens nothing: it is here so a
/// service-account key file can be signed with, and checked against,
/// something. (Made once rather than at test time: no crate in the build
/// generates RSA keys, and `rsa` would bring a dozen crates and seconds of
/// unoptimised key generation per run.)
pub const TEST_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDiZk6sims4ikO3
/mC3HDccTDuUtU0UNDgqz1q+YGS4i7d3lQDxwGsWpC8H56Pi8KInLK+Rc/shBG4j
Xlc0OGcuhmrXWvGhqUsBJLoY08aPTsx9bvuRu6Sv+Edsyoamwqnu8YL4wpVsUCHa
iZNRsmeScYVOnoaiPMINEaBdIKzRBIjIut9wFPr0nQ1lm+5vUKiey5Qu8OsIfVdG
YgDS26mARposw1pkmtsVRWs1rpHV3ucl5Lyq/VdelqE68VDxhK8buqT/GdzEb2XQ
zxgc9i8R6e3HYWPxCnhp5We5CG4dIanwLAsrrd9jU7i/MwGfFKwyDG2x4eI5D8FS
x/0j1J03AgMBAAECggEATk+PFRWIAvWoeONPducWlP41ebnAoKVzbDNvMvzKuh7x
5jYvLnAdWqaN8hEI2j3cCOrnC8vvaLtMkYVXaqO75Rbvq/A0NnQFkq6uhFn0i6t5
BkY2VHFwhMG/ivz+2H3rI9B8OimsX9vT6fC+eXrZYolL0Cb7cPDNOpIHQ09DF8Tw
MiFpfdX5mSNAXueSuxwstWpnuDz+flb1lcIUHncrk4OcHTH/WOBHHFVpZVG+FFSp
Jss8rR286mpqj3oSDj6e8r7GO3Vp2mKO0XDygYqcj59PlDGNU4H6mFvKoxurFCIj
lmKhO6CSxEa6Gs4BQmq6r7HLCst0HlD/xlGIp50voQKBgQDyUDucVHBDGcXWrz2o
iRuK7j61/Q7rKU6kfUEhEisfsT6qiL6lkGAbSOkLzHBHOFQ47keEiUioBbiT85Oh
MmXOiniHekr02c3/VOIMKQXXuX6zijRx6GbRmh3d83HcgQkrlcDtfWzNpt/ajAgz
FBZfOLPya/aSK/J0Rh8PdqP+ZwKBgQDvL/eGbCgssMPLnpjjOZiB38PLnFVcLTkQ
8C7pndj6WLlRmRXmP5iJkAcou9DbtNpy0oyRcZOBgd5M8x0HQIqh5g9pAnJEK8N6
7KHevd3o8VxdGx1SSG4CR+ArDDMWSBih2jIdCLlnDl26vsrFUrh/bRfPTB/tdH0k
rG3a832IsQKBgAqU8mV7UoO7pmYftQOdKTTB/r8X1AT1AtgwGB4HmxaBOQlde2Xj
ji7i2jqHrQePMC5kSX9CN4gO5+aeJn5NoyCH74eLEabrtBFIda6uQ/ENyriwemXX
DlZs8oz0yq4kfHAI1CoK5it89B2pK9p/MBLseP9HM7dib+4f+c9FERhVAoGAU6DP
yJ4URdvf+VeQWRIQMoiMKqqUZdAh/bwciu33qUBQOyltML3XlXFYL3PLiKXpIvBe
2ZN+YW+IzBrMcXatggGwLaT/UrqCdH478mcsKYAKLTuHuvc8D2wWArcXPZkjk6N4
lhIw0MmDGAIRX4CWpWb9Rit1lk5+Ws428rDjmWECgYEA678KNPE2z+dABHTM/gaP
zgcQYGkdU+o25x4plCDbDO0abu3u7fAexiADkus4PeLhyD7lCeACd0tMbkExI4eH
lOhMM/ejCpX5upOXj9bN5yyKZqnerrog8fzzlEltddsENrDDa9Hc7nxDfl/j2JVN
tAQxa/U/iGoc6/XpTF68qG0=
-----END PRIVATE KEY-----
";

fn json_response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The request line's method and path.
fn method_and_path(request: &str) -> (&str, &str) {
    let mut words = request.split(' ');
    (words.next().unwrap_or(""), words.next().unwrap_or(""))
}

/// A token exchange a fake STS accepts: the fields of RFC 8693's form it
/// requires besides the grant and requested token types.
pub struct Exchange {
    /// The workload identity pool provider.
    pub audience: String,
    /// What the subject token file holds.
    pub subject_token: String,
    /// `scope`: [`CLOUD_PLATFORM`] for a token used as is, [`IAM_SCOPE`]
    /// for one exchanged again for a service account's.
    pub scope: &'static str,
}

/// A fake Security Token Service on loopback. A `POST /v1/token` whose
/// form is RFC 8693's token exchange (`grant_type`
/// `urn:ietf:params:oauth:grant-type:token-exchange`, `requested_token_type`
/// an access token, `subject_token_type` [`JWT_TOKEN_TYPE`]) with the
/// `audience`, `subject_token` and `scope` of `expected` gets
/// `access_token`, valid an hour; anything else a 400 `invalid_grant`.
/// Returns its URL (an `external_account` file's `token_url`) and its
/// ledger.
pub fn sts(expected: Exchange, access_token: &'static str) -> (String, Ledger) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/token", listener.local_addr().unwrap());
    let ledger = Ledger::default();
    let seen = ledger.clone();
    serve(listener, move |request| {
        let body = request.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        // The form, decoded as a URL's query is.
        let form = reqwest::Url::parse(&format!("http://sts/?{body}")).unwrap();
        let field = |name: &str| {
            form.query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        let required = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token_type", JWT_TOKEN_TYPE),
            ("subject_token", expected.subject_token.as_str()),
            ("audience", expected.audience.as_str()),
            ("scope", expected.scope),
        ];
        let mut wrong: Vec<&str> = required
            .iter()
            .filter(|(name, value)| field(name).as_deref() != Some(*value))
            .map(|(name, _)| *name)
            .collect();
        if method_and_path(request) != ("POST", "/v1/token") {
            wrong.push("request line");
        }
        if header_values(request, "content-type") != ["application/x-www-form-urlencoded"] {
            wrong.push("content-type");
        }
        if !wrong.is_empty() {
            seen.refuse(format!("wrong: {wrong:?}"));
            return json_response(
                "400 Bad Request",
                r#"{"error":"invalid_grant","error_description":"The token exchange was refused."}"#,
            );
        }
        seen.issue();
        json_response(
            "200 OK",
            &format!(
                r#"{{"access_token":"{access_token}","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}}"#
            ),
        )
    });
    (url, ledger)
}

/// A fake IAM Credentials `generateAccessToken` for `client_email` on
/// loopback. A `POST` to the method's path for that account, carrying
/// `Bearer {sts_token}` and asking for [`CLOUD_PLATFORM`] for an hour
/// (`{"scope":[…],"lifetime":"3600s"}`), gets `access_token`, valid an
/// hour; anything else a 403. Returns its URL (an `external_account`
/// file's `service_account_impersonation_url`) and its ledger.
pub fn impersonation(
    client_email: &'static str,
    sts_token: &'static str,
    access_token: &'static str,
) -> (String, Ledger) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let path = format!("/v1/projects/-/serviceAccounts/{client_email}:generateAccessToken");
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let ledger = Ledger::default();
    let seen = ledger.clone();
    serve(listener, move |request| {
        let mut wrong = Vec::new();
        if method_and_path(request) != ("POST", path.as_str()) {
            wrong.push("request line");
        }
        if header_values(request, "authorization") != [format!("Bearer {sts_token}")] {
            wrong.push("authorization");
        }
        let asked = serde_json::json!({"scope": [CLOUD_PLATFORM], "lifetime": "3600s"});
        if json_body(request) != Some(asked) {
            wrong.push("body");
        }
        if !wrong.is_empty() {
            seen.refuse(format!("wrong: {wrong:?}"));
            return json_response(
                "403 Forbidden",
                r#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied.","status":"PERMISSION_DENIED"}}"#,
            );
        }
        seen.issue();
        let expire_time =
            humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
        json_response(
            "200 OK",
            &format!(r#"{{"accessToken":"{access_token}","expireTime":"{expire_time}"}}"#),
        )
    });
    (url, ledger)
}

/// A proxy on loopback that forwards nothing: each request (a `CONNECT`
/// for an `https://` target, the absolute form for an `http://` one) is
/// kept and answered 403.
pub struct ProxyTrap {
    url: String,
    caught: Arc<Mutex<Vec<String>>>,
}

impl ProxyTrap {
    /// Starts a trap.
    pub fn start() -> ProxyTrap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let caught = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&caught);
        serve(listener, move |request| {
            let line = request.lines().next().unwrap_or("").to_string();
            log.lock().unwrap().push(line);
            "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
        });
        ProxyTrap { url, caught }
    }

    /// The variables that send every request but loopback's to the trap.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HTTPS_PROXY", self.url.clone()),
            ("HTTP_PROXY", self.url.clone()),
            ("ALL_PROXY", self.url.clone()),
            ("NO_PROXY", "127.0.0.1,localhost".to_string()),
        ]
    }

    /// The request line of each request the trap caught.
    pub fn caught(&self) -> Vec<String> {
        self.caught.lock().unwrap().clone()
    }
}

/// The header and claims of `jwt`, a JWS in compact form, when its
/// signature is RS256 by [`TEST_KEY_PEM`]; why not otherwise.
pub fn verified_jwt(jwt: &str) -> Result<(serde_json::Value, serde_json::Value), String> {
    let base64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(format!("{} parts, not 3", parts.len()));
    };
    let decode_json = |part: &str| -> Result<serde_json::Value, String> {
        let bytes = base64url.decode(part).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let signature = base64url.decode(signature).map_err(|e| e.to_string())?;
    let pkcs8: String = TEST_KEY_PEM
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(pkcs8)
        .unwrap();
    let key = ring::signature::RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        key.public().as_ref(),
    )
    .verify(format!("{header}.{claims}").as_bytes(), &signature)
    .map_err(|_| "the signature does not verify with the test key's public key".to_string())?;
    Ok((decode_json(header)?, decode_json(claims)?))
}

/// A fake token server on loopback: answers `token` as an hour's access
/// token to requests for `path` that hold `must_contain` (in the head or
/// the body), 401 otherwise. Counts the tokens it gave.
pub fn token_server(
    path: &'static str,
    must_contain: &'static str,
    token: &'static str,
) -> (String, Arc<AtomicUsize>) {
    token_series(path, must_contain, vec![(token, 3600)])
}

/// [`token_server`] giving `tokens` in turn, each `(token, expires_in)`;
/// the last one again once they are all given.
pub fn token_series(
    path: &'static str,
    must_contain: &'static str,
    tokens: Vec<(&'static str, u64)>,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request = format!("{head}{}", String::from_utf8_lossy(&body));
            let path_ok = head
                .lines()
                .next()
                .is_some_and(|line| line.split(' ').nth(1).unwrap_or("").starts_with(path));
            if !path_ok
                || !request
                    .to_ascii_lowercase()
                    .contains(&must_contain.to_ascii_lowercase())
            {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            }
            let given = count.fetch_add(1, Ordering::SeqCst);
            let (token, expires_in) = tokens[given.min(tokens.len() - 1)];
            let body = format!(
                r#"{{"access_token":"{token}","expires_in":{expires_in},"token_type":"Bearer"}}"#
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (address, served)
}
