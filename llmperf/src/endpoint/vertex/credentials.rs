//! The bearer token of Vertex AI requests, and the token cache.
//!
//! The token comes from the first of:
//!
//! 1. the setting `token_command` (e.g. `gcloud auth print-access-token`),
//!    run without a shell (split on whitespace), its token cached for the
//!    whole process ([`TokenCache`]): refreshed in the background after 45
//!    minutes and fetched afresh after 55 (Google's tokens live 60);
//! 2. the setting `access_token` (`VERTEXAI_ACCESS_TOKEN`);
//! 3. the spec's API key (`VERTEXAI_API_KEY` or `.api_key(…)`);
//! 4. `GCLOUD_ACCESS_TOKEN`;
//! 5. Application Default Credentials ([`adc`]): the key file
//!    in `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud user credentials, the
//!    metadata server — for a Google base URL, or any base URL when
//!    `GOOGLE_APPLICATION_CREDENTIALS` or `GCE_METADATA_HOST` is set; their
//!    tokens are renewed before they expire.
//!
//! Any of 1–4, `GOOGLE_APPLICATION_CREDENTIALS` or `GCE_METADATA_HOST`
//! makes the default base URL count as configured (with only gcloud's user
//! credentials or a real metadata server, give the base URL). No token at
//! all is an `unauthorized` error with the reason for a Google base URL,
//! and no header otherwise (the built-in endpoint). A failing command is an
//! `unauthorized` error naming the command, never its output.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::adc;
use super::env_var;
use super::url::Location;
use crate::endpoint::{setting, Credentials, ErrorKind, RequestError, Target};
use crate::spec::Secret;

pub(crate) fn credentials(options: &BTreeMap<String, String>, env_prefix: &str) -> Credentials {
    if let Some(command) = setting(options, env_prefix, "token_command") {
        return Credentials {
            source: format!("the access token printed by token_command `{command}`"),
            configured: true,
        };
    }
    let token_env = format!("{env_prefix}_ACCESS_TOKEN");
    let key_env = format!("{env_prefix}_API_KEY");
    let configured = options.contains_key("access_token")
        || [token_env.as_str(), key_env.as_str(), "GCLOUD_ACCESS_TOKEN"]
            .iter()
            .any(|name| env_var(name).is_some())
        || adc::pointed_at();
    Credentials {
        source: format!(
            "the Vertex AI access token in {token_env}, {key_env} or GCLOUD_ACCESS_TOKEN, \
             token_command (e.g. `gcloud auth print-access-token`), or Application Default \
             Credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default \
             login`, the metadata server)"
        ),
        configured,
    }
}

/// The bearer token for one request (see the module docs for the order).
pub(crate) fn access_token(
    target: &Target,
    location: &Location,
) -> Result<Option<Secret>, RequestError> {
    if let Some(command) = target.setting("token_command") {
        return TokenCache::global().get(&command, Instant::now()).map(Some);
    }
    let token = target
        .setting("access_token")
        .map(|token| Secret::new(token.trim()))
        .or_else(|| target.api_key.clone())
        .or_else(|| env_var("GCLOUD_ACCESS_TOKEN").map(|token| Secret::new(token.trim())));
    if token.is_none() && (location.google || adc::pointed_at()) {
        return adc::token().map(Some);
    }
    Ok(token)
}

/// Access tokens printed by token commands, cached per command line.
///
/// A token younger than `refresh_after` is used as is; an older one is
/// still used while a background thread runs the command again, until it
/// is `expire_after` old; then (and the first time) the command runs in
/// the caller, holding the cache so concurrent requests wait for one run
/// rather than each starting their own.
#[derive(Clone)]
pub struct TokenCache(Arc<CacheInner>);

struct CacheInner {
    refresh_after: Duration,
    expire_after: Duration,
    entries: Mutex<HashMap<String, CachedToken>>,
}

struct CachedToken {
    token: Secret,
    fetched: Instant,
    refreshing: bool,
}

/// Google's access tokens live an hour: refresh well before, stop using
/// one shortly before.
const REFRESH_AFTER: Duration = Duration::from_secs(45 * 60);
const EXPIRE_AFTER: Duration = Duration::from_secs(55 * 60);

impl TokenCache {
    /// A cache with these ages (the process-wide one uses 45 and 55 minutes).
    pub fn new(refresh_after: Duration, expire_after: Duration) -> Self {
        TokenCache(Arc::new(CacheInner {
            refresh_after,
            expire_after: expire_after.max(refresh_after),
            entries: Mutex::new(HashMap::new()),
        }))
    }

    /// The process-wide cache the Vertex kinds use.
    pub fn global() -> &'static TokenCache {
        static GLOBAL: OnceLock<TokenCache> = OnceLock::new();
        GLOBAL.get_or_init(|| TokenCache::new(REFRESH_AFTER, EXPIRE_AFTER))
    }

    /// The token `command` prints, as of `now` (see the type's docs).
    pub fn get(&self, command: &str, now: Instant) -> Result<Secret, RequestError> {
        let mut entries = lock(&self.0.entries);
        if let Some(entry) = entries.get_mut(command) {
            let age = now.saturating_duration_since(entry.fetched);
            if age < self.0.refresh_after {
                return Ok(entry.token.clone());
            }
            if age < self.0.expire_after {
                if !entry.refreshing {
                    entry.refreshing = true;
                    let cache = self.clone();
                    let line = command.to_string();
                    let spawned = std::thread::Builder::new()
                        .name("llmperf-token".to_string())
                        .spawn(move || cache.refresh(&line, now));
                    // Without a thread, the next request tries again.
                    entry.refreshing = spawned.is_ok();
                }
                return Ok(entry.token.clone());
            }
        }
        let token = run_token_command(command)?;
        entries.insert(
            command.to_string(),
            CachedToken {
                token: token.clone(),
                fetched: now,
                refreshing: false,
            },
        );
        Ok(token)
    }

    fn refresh(&self, command: &str, started: Instant) {
        // A failure keeps the old token; once it expires, a request runs
        // the command itself and reports the failure.
        let result = run_token_command(command);
        let mut entries = lock(&self.0.entries);
        if let Some(entry) = entries.get_mut(command) {
            entry.refreshing = false;
            if let Ok(token) = result {
                entry.token = token;
                entry.fetched = started;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs a token command (no shell) and reads one token from its output.
/// Errors name the command, never its output, which may hold a token.
fn run_token_command(command: &str) -> Result<Secret, RequestError> {
    let failed = |why: String| {
        RequestError::new(
            ErrorKind::Unauthorized,
            format!("the Vertex AI token_command `{command}` {why}"),
        )
    };
    let mut words = command.split_whitespace();
    let program = words.next().ok_or_else(|| failed("is empty".into()))?;
    let output = std::process::Command::new(program)
        .args(words)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|error| failed(format!("could not be run: {error}")))?;
    if !output.status.success() {
        return Err(failed(format!(
            "failed ({}); run it yourself to see why",
            output.status
        )));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| failed("printed something that is not text".into()))?;
    let mut tokens = text.split_whitespace();
    match (tokens.next(), tokens.next()) {
        (Some(token), None) => Ok(Secret::new(token)),
        (None, _) => Err(failed("printed no token".into())),
        (Some(_), Some(_)) => Err(failed(
            "printed more than one word; it must print only the access token".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::vertex::{target, DEFAULT_BASE_URL};

    #[test]
    fn a_given_token_is_used_as_given() {
        // Without one, a Google base URL asks Application Default
        // Credentials: tests/google_credentials.rs, against local fakes.
        let t = target(DEFAULT_BASE_URL, &[("project", "p")]);
        let location = Location::of(&t).unwrap();
        let given = target(
            DEFAULT_BASE_URL,
            &[("project", "p"), ("access_token", " ya29.x \n")],
        );
        let token = access_token(&given, &location).unwrap().unwrap();
        assert_eq!(token.expose(), "ya29.x");
    }

    /// A token script that prints `token-N` on its N-th run.
    fn counting_script(dir: &std::path::Path) -> String {
        let script = dir.join("token.sh");
        std::fs::write(
            &script,
            "n=$(cat \"$(dirname \"$0\")/count\" 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > \"$(dirname \"$0\")/count\"\necho token-$n\n",
        )
        .unwrap();
        format!("sh {}", script.display())
    }

    #[test]
    fn token_commands_are_cached_refreshed_in_the_background_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let command = counting_script(dir.path());
        let minute = Duration::from_secs(60);
        let cache = TokenCache::new(45 * minute, 55 * minute);
        let t0 = Instant::now();
        assert_eq!(cache.get(&command, t0).unwrap().expose(), "token-1");
        assert_eq!(
            cache.get(&command, t0 + 44 * minute).unwrap().expose(),
            "token-1"
        );
        // Past the refresh age: the old token while the command runs again.
        assert_eq!(
            cache.get(&command, t0 + 46 * minute).unwrap().expose(),
            "token-1"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let refreshed = loop {
            let token = cache.get(&command, t0 + 47 * minute).unwrap();
            if token.expose() != "token-1" || Instant::now() > deadline {
                break token;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(refreshed.expose(), "token-2");
        // The refreshed token counts from when its refresh started (46 min).
        assert_eq!(
            cache.get(&command, t0 + 90 * minute).unwrap().expose(),
            "token-2"
        );
        // Past the expiry age the command runs in the caller.
        assert_eq!(
            cache.get(&command, t0 + 200 * minute).unwrap().expose(),
            "token-3"
        );
    }

    #[test]
    fn failing_token_commands_name_the_command_not_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("bad.sh");
        std::fs::write(&script, "echo ya29.secret-token\nexit 3\n").unwrap();
        let command = format!("sh {}", script.display());
        let cache = TokenCache::new(Duration::from_secs(60), Duration::from_secs(60));
        let error = cache.get(&command, Instant::now()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unauthorized);
        assert!(error.message.contains(&command), "{}", error.message);
        assert!(!error.message.contains("secret-token"), "{}", error.message);
        let two = dir.path().join("two.sh");
        std::fs::write(&two, "echo ya29.secret-token extra\n").unwrap();
        let error = cache
            .get(&format!("sh {}", two.display()), Instant::now())
            .unwrap_err();
        assert!(!error.message.contains("secret-token"), "{}", error.message);
        let missing = cache
            .get("/nonexistent/llmperf-token-helper", Instant::now())
            .unwrap_err();
        assert!(
            missing.message.contains("could not be run"),
            "{}",
            missing.message
        );
        assert!(cache.get("   ", Instant::now()).is_err());
    }

    #[test]
    fn credentials_name_the_token_variables() {
        let none = credentials(&BTreeMap::new(), "LLMPERF_VERTEX_TEST_UNSET");
        assert!(
            none.source.contains("GCLOUD_ACCESS_TOKEN"),
            "{}",
            none.source
        );
        let options = BTreeMap::from([(
            "token_command".to_string(),
            "gcloud auth print-access-token".to_string(),
        )]);
        let command = credentials(&options, "LLMPERF_VERTEX_TEST_UNSET");
        assert!(command.configured);
        assert!(command.source.contains("`gcloud auth print-access-token`"));
    }
}
