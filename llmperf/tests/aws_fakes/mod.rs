//! Fakes of the AWS services the default credential chain calls, on
//! loopback, and a relay that shows what llmperf signed with.
//!
//! - [`container_agent`]: the container credentials agent ECS and EKS Pod
//!   Identity run, reached through `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
//! - [`sts`]: STS `AssumeRoleWithWebIdentity` (what Kubernetes service
//!   accounts and EKS IRSA use), reached through `AWS_ENDPOINT_URL_STS`.
//! - [`sso_portal`]: the IAM Identity Center portal's `GetRoleCredentials`,
//!   reached through `AWS_ENDPOINT_URL_SSO`.
//! - [`instance_metadata`]: the EC2 instance metadata service (IMDSv2) with
//!   an instance role, reached through `AWS_EC2_METADATA_SERVICE_ENDPOINT`;
//!   [`silent_instance_metadata`], one that never answers.
//! - [`Relay`]: a TCP relay in front of the built-in endpoint keeping the
//!   bytes llmperf sent. The built-in endpoint checks signatures against
//!   its test key pair with whatever session token a request carries, so
//!   only the relay can tell which session token was sent.
//!
//! Each fake hands out the built-in endpoint's test key pair (so the
//! signatures verify) with a session token of its own, numbered in the
//! order it issued them. Its counts are lower bounds of what one test
//! caused: the chains of earlier tests live on in the process and resolve
//! again from whatever the environment then says, this test's fakes
//! included. So tests check what each request carried.
//!
//! Included by test files with `mod aws_fakes;` (after `mod raw_server;`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use llmperf::endpoint::sagemaker::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

use crate::raw_server::{header_values, serve_each as serve, Ledger};

/// The session token a fake container agent issues with its `n`th
/// credentials.
pub fn container_session_token(n: usize) -> String {
    format!("container-session-token-{n}")
}

/// The session token a fake STS issues with its `n`th credentials.
pub fn sts_session_token(n: usize) -> String {
    format!("sts-session-token-{n}")
}

/// The session token a fake SSO portal issues with its `n`th credentials.
pub fn sso_session_token(n: usize) -> String {
    format!("sso-session-token-{n}")
}

/// The session token a fake instance metadata service issues with its
/// `n`th credentials.
pub fn imds_session_token(n: usize) -> String {
    format!("imds-session-token-{n}")
}

/// The `n`th IMDSv2 token (what `PUT /latest/api/token` answers, and
/// every `GET` must carry as `x-aws-ec2-metadata-token`) a fake instance
/// metadata service hands out.
pub fn imds_metadata_token(n: usize) -> String {
    format!("imds-metadata-token-{n}")
}

fn response(status: &str, content_type: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A fake container credentials agent on loopback: when the
/// `Authorization` header is `auth`, answers the test key pair with
/// [`container_session_token`]`(n)`, expiring after `life`; otherwise 401.
/// Returns its URL (for `AWS_CONTAINER_CREDENTIALS_FULL_URI`) and its
/// ledger.
pub fn container_agent(auth: &'static str, life: Duration) -> (String, Ledger) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/v2/credentials/llmperf",
        listener.local_addr().unwrap()
    );
    let ledger = Ledger::default();
    let seen = ledger.clone();
    serve(listener, move |request| {
        if header_values(request, "authorization") != [auth] {
            seen.refuse("authorization");
            return response("401 Unauthorized", "application/json", "", "{}");
        }
        let n = seen.issue();
        let expiration = humantime::format_rfc3339_millis(SystemTime::now() + life);
        let body = format!(
            r#"{{"AccessKeyId":"{TEST_ACCESS_KEY_ID}","SecretAccessKey":"{TEST_SECRET_ACCESS_KEY}","Token":"{}","Expiration":"{expiration}"}}"#,
            container_session_token(n)
        );
        response("200 OK", "application/json", "", &body)
    });
    (url, ledger)
}

/// A fake STS on loopback for `AssumeRoleWithWebIdentity`. It checks the
/// posted form (the action, `role_arn`, `session_name`, and `token`: the
/// content of the token file) and answers STS's XML with the test key
/// pair and [`sts_session_token`]`(n)`, expiring after `life`. Returns
/// its URL (for `AWS_ENDPOINT_URL_STS`) and its ledger.
pub fn sts(
    role_arn: &'static str,
    session_name: &'static str,
    token: &'static str,
    life: Duration,
) -> (String, Ledger) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let ledger = Ledger::default();
    let seen = ledger.clone();
    serve(listener, move |request| {
        let (head, body) = request.split_once("\r\n\r\n").unwrap_or((request, ""));
        // The form, decoded as a URL's query is.
        let form = reqwest::Url::parse(&format!("http://sts/?{body}")).unwrap();
        let field = |name: &str| {
            form.query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        let expected = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role_arn),
            ("RoleSessionName", session_name),
            ("WebIdentityToken", token),
        ];
        let wrong: Vec<&str> = expected
            .iter()
            .filter(|(name, value)| field(name).as_deref() != Some(*value))
            .map(|(name, _)| *name)
            .collect();
        if !head.starts_with("POST / HTTP/1.1\r\n") || !wrong.is_empty() {
            seen.refuse(format!(
                "{} wrong: {wrong:?}",
                head.lines().next().unwrap_or("")
            ));
            let body = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>The web identity token or role does not match</Message></Error><RequestId>llmperf-fake</RequestId></ErrorResponse>";
            return response("400 Bad Request", "text/xml", "", body);
        }
        let n = seen.issue();
        let expiration = humantime::format_rfc3339_millis(SystemTime::now() + life);
        let session_token = sts_session_token(n);
        let body = format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleWithWebIdentityResult>\
             <SubjectFromWebIdentityToken>system:serviceaccount:bench:llmperf</SubjectFromWebIdentityToken>\
             <Audience>sts.amazonaws.com</Audience>\
             <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/llmperf-bench/{session_name}</Arn>\
             <AssumedRoleId>AROAEXAMPLEID:{session_name}</AssumedRoleId></AssumedRoleUser>\
             <Credentials><AccessKeyId>{TEST_ACCESS_KEY_ID}</AccessKeyId>\
             <SecretAccessKey>{TEST_SECRET_ACCESS_KEY}</SecretAccessKey>\
             <SessionToken>{session_token}</SessionToken>\
             <Expiration>{expiration}</Expiration></Credentials>\
             <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.example</Provider>\
             </AssumeRoleWithWebIdentityResult>\
             <ResponseMetadata><RequestId>llmperf-fake-{n}</RequestId></ResponseMetadata>\
             </AssumeRoleWithWebIdentityResponse>"
        );
        response("200 OK", "text/xml", "", &body)
    });
    (url, ledger)
}

/// A fake STS whose every answer is a `200` the SDK cannot read: real
/// looking credentials (`secret` as the secret key, `session_token` as
/// the session token) whose `Expiration` is no timestamp. Counts its
/// answers as issued.
pub fn garbled_sts(secret: &'static str, session_token: &'static str) -> (String, Ledger) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let ledger = Ledger::default();
    let seen = ledger.clone();
    serve(listener, move |_| {
        seen.issue();
        let body = format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleWithWebIdentityResult><Credentials>\
             <AccessKeyId>{TEST_ACCESS_KEY_ID}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>\
             <SessionToken>{session_token}</SessionToken><Expiration>in an hour</Expiration>\
             </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        );
        response("200 OK", "text/xml", "", &body)
    });
    (url, ledger)
}

/// A fake IAM Identity Center portal on loopback for `GetRoleCredentials`
/// (`GET /federation/credentials?account_id=&role_name=`). It answers the
/// test key pair with [`sso_session_token`]`(n)`, valid an hour, when the
/// `x-amz-sso_bearer_token` header is `access_token` and the query names
/// `account_id` and `role_name`; otherwise 401, as the portal answers a
/// token it does not know. Returns its URL (for `AWS_ENDPOINT_URL_SSO`)
/// and its ledger.
pub fn sso_portal(
    access_token: &'static str,
    account_id: &'static str,
    role_name: &'static str,
) -> (String, Ledger) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let ledger = Ledger::default();
    let seen = ledger.clone();
    serve(listener, move |request| {
        let target = request.split(' ').nth(1).unwrap_or("");
        let url = reqwest::Url::parse(&format!("http://portal{target}")).unwrap();
        let query = |name: &str| {
            url.query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        let bearer = header_values(request, "x-amz-sso_bearer_token");
        let mut wrong = Vec::new();
        if !request.starts_with("GET ") || url.path() != "/federation/credentials" {
            wrong.push("path");
        }
        if query("account_id").as_deref() != Some(account_id) {
            wrong.push("account_id");
        }
        if query("role_name").as_deref() != Some(role_name) {
            wrong.push("role_name");
        }
        if bearer != [access_token] {
            wrong.push("x-amz-sso_bearer_token");
        }
        if !wrong.is_empty() {
            seen.refuse(format!("wrong: {wrong:?}"));
            return response(
                "401 Unauthorized",
                "application/json",
                "x-amzn-errortype: UnauthorizedException\r\n",
                r#"{"message":"Session token not found or invalid"}"#,
            );
        }
        let n = seen.issue();
        let expiration = (SystemTime::now() + Duration::from_secs(3600))
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let body = format!(
            r#"{{"roleCredentials":{{"accessKeyId":"{TEST_ACCESS_KEY_ID}","secretAccessKey":"{TEST_SECRET_ACCESS_KEY}","sessionToken":"{}","expiration":{expiration}}}}}"#,
            sso_session_token(n)
        );
        response("200 OK", "application/json", "", &body)
    });
    (url, ledger)
}

/// What a fake instance metadata service saw: the credentials it issued
/// and the requests it refused, as a [`Ledger`], and the IMDSv2 tokens it
/// handed out. Cloning shares it.
#[derive(Clone, Default)]
pub struct MetadataLedger {
    ledger: Ledger,
    /// When each handed-out token expires, in the order they went.
    token_expiries: Arc<Mutex<Vec<Instant>>>,
}

impl MetadataLedger {
    /// How many credentials the fake issued.
    pub fn issued(&self) -> usize {
        self.ledger.issued()
    }

    /// Why each refused request was refused.
    pub fn refused(&self) -> Vec<String> {
        self.ledger.refused()
    }

    /// How many IMDSv2 tokens the fake handed out.
    pub fn metadata_tokens(&self) -> usize {
        self.token_expiries.lock().unwrap().len()
    }

    fn hand_out_token(&self, ttl: Duration) -> String {
        let mut expiries = self.token_expiries.lock().unwrap();
        expiries.push(Instant::now() + ttl);
        imds_metadata_token(expiries.len())
    }

    /// Whether `values` (a request's `x-aws-ec2-metadata-token` headers)
    /// is one token this fake handed out, not yet expired.
    fn token_is_valid(&self, values: &[String]) -> bool {
        let [value] = values else { return false };
        let expiries = self.token_expiries.lock().unwrap();
        (1..=expiries.len())
            .find(|n| imds_metadata_token(*n) == *value)
            .is_some_and(|n| Instant::now() < expiries[n - 1])
    }
}

/// Where instance credentials are listed (the role name) and served (at
/// this path plus the role name).
const SECURITY_CREDENTIALS: &str = "/latest/meta-data/iam/security-credentials/";

/// A fake EC2 instance metadata service on loopback that requires IMDSv2,
/// for an instance whose role is `role`:
///
/// - `PUT /latest/api/token` with `x-aws-ec2-metadata-token-ttl-seconds`
///   (1 to 21600) hands out [`imds_metadata_token`]`(n)`, valid that long,
///   with the TTL header echoed; without a valid TTL, 400.
/// - A `GET` whose `x-aws-ec2-metadata-token` is not a live token it
///   handed out gets 401, as an instance with `HttpTokens=required`
///   answers (IMDSv1 refused).
/// - `GET /latest/meta-data/iam/security-credentials/` answers `role`;
///   `GET` of that path plus `role` answers the test key pair with
///   [`imds_session_token`]`(n)`, expiring after `life`. Any other path
///   gets 404.
///
/// Every request answered other than with a 200 is refused (the ledger
/// says why). Returns its URL (for `AWS_EC2_METADATA_SERVICE_ENDPOINT`)
/// and its ledger.
pub fn instance_metadata(role: &'static str, life: Duration) -> (String, MetadataLedger) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let ledger = MetadataLedger::default();
    let seen = ledger.clone();
    serve(listener, move |request| {
        let mut line = request.lines().next().unwrap_or("").split(' ');
        let (method, path) = (line.next().unwrap_or(""), line.next().unwrap_or(""));
        if method == "PUT" && path == "/latest/api/token" {
            let ttl_s = header_values(request, "x-aws-ec2-metadata-token-ttl-seconds")
                .first()
                .and_then(|value| value.parse::<u64>().ok())
                .filter(|ttl_s| (1..=21_600).contains(ttl_s));
            let Some(ttl_s) = ttl_s else {
                seen.ledger.refuse("PUT without a valid token TTL");
                return response("400 Bad Request", "text/plain", "", "");
            };
            let token = seen.hand_out_token(Duration::from_secs(ttl_s));
            let ttl_header = format!("x-aws-ec2-metadata-token-ttl-seconds: {ttl_s}\r\n");
            return response("200 OK", "text/plain", &ttl_header, &token);
        }
        if method != "GET" {
            seen.ledger.refuse(format!("{method} {path}"));
            return response("405 Method Not Allowed", "text/plain", "", "");
        }
        if !seen.token_is_valid(&header_values(request, "x-aws-ec2-metadata-token")) {
            seen.ledger.refuse(format!(
                "GET {path} without a valid x-aws-ec2-metadata-token"
            ));
            return response("401 Unauthorized", "text/plain", "", "");
        }
        match path.strip_prefix(SECURITY_CREDENTIALS) {
            Some("") => response("200 OK", "text/plain", "", role),
            Some(name) if name == role => {
                let n = seen.ledger.issue();
                let now = SystemTime::now();
                let body = format!(
                    r#"{{"Code":"Success","LastUpdated":"{}","Type":"AWS-HMAC","AccessKeyId":"{TEST_ACCESS_KEY_ID}","SecretAccessKey":"{TEST_SECRET_ACCESS_KEY}","Token":"{}","Expiration":"{}"}}"#,
                    humantime::format_rfc3339_seconds(now),
                    imds_session_token(n),
                    humantime::format_rfc3339_millis(now + life),
                );
                response("200 OK", "text/plain", "", &body)
            }
            _ => {
                seen.ledger.refuse(format!("GET {path}"));
                response("404 Not Found", "text/plain", "", "")
            }
        }
    });
    (url, ledger)
}

/// An instance metadata address on loopback that accepts connections and
/// never answers (reads nothing, closes nothing) until the process ends:
/// a hung service. (An address that drops packets would time out while
/// connecting instead, which loopback cannot show.) Returns its URL (for
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT`).
pub fn silent_instance_metadata() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        let mut held = Vec::new();
        for socket in listener.incoming().flatten() {
            held.push(socket);
        }
    });
    url
}

/// How one request reaching the built-in endpoint was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The access key id in the `Authorization` header's credential scope.
    pub access_key_id: String,
    /// The `X-Amz-Security-Token` header.
    pub session_token: Option<String>,
}

/// A TCP relay on loopback in front of `upstream`: bytes flow both ways
/// untouched, and what the clients sent is kept per connection, in the
/// order the connections came.
pub struct Relay {
    /// `http://127.0.0.1:PORT`, the base URL to give llmperf.
    pub url: String,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Relay {
    /// Starts a relay to `upstream`.
    pub fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let index = {
                    let mut log = log.lock().unwrap();
                    log.push(Vec::new());
                    log.len() - 1
                };
                let (mut from_server, mut to_client) = (server.try_clone().unwrap(), client);
                let (mut from_client, mut to_server) = (to_client.try_clone().unwrap(), server);
                thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(Shutdown::Both);
                });
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    let mut buffer = [0u8; 16 * 1024];
                    loop {
                        let n = match from_client.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        // Kept before it is passed on: once the server has
                        // answered a request, the relay holds all of it.
                        log.lock().unwrap()[index].extend_from_slice(&buffer[..n]);
                        if to_server.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown(Shutdown::Write);
                });
            }
        });
        Relay { url, sent }
    }

    /// How each request sent through the relay was signed, connection by
    /// connection, each connection's requests in order.
    pub fn signed(&self) -> Vec<Signed> {
        let sent = self.sent.lock().unwrap();
        let mut signed = Vec::new();
        for connection in sent.iter() {
            let text = String::from_utf8_lossy(connection);
            // Each piece is the previous request's JSON body (which holds
            // no blank line) followed by the next request's head.
            for piece in text.split("\r\n\r\n") {
                let Some(start) = piece.find("POST /") else {
                    continue;
                };
                let head = format!("{}\r\n\r\n", &piece[start..]);
                let authorization = header_values(&head, "authorization");
                let access_key_id = authorization
                    .first()
                    .and_then(|value| value.split("Credential=").nth(1))
                    .and_then(|scope| scope.split('/').next())
                    .unwrap_or_default()
                    .to_string();
                signed.push(Signed {
                    access_key_id,
                    session_token: header_values(&head, "x-amz-security-token")
                        .into_iter()
                        .next(),
                });
            }
        }
        signed
    }
}
