//! The process environment of one test: variables cleared and set on
//! creation, every one restored on drop, under a lock no other test of the
//! binary holds meanwhile (the cloud credential sources read process-wide
//! variables, so tests that set them run one at a time).
//!
//! Included by test files with `mod scoped_env;`.

#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::sync::{Mutex, MutexGuard};

/// See the module docs.
pub struct ScopedEnv {
    saved: Vec<(OsString, Option<OsString>)>,
    _lock: MutexGuard<'static, ()>,
}

impl ScopedEnv {
    /// Removes `clear`, then sets `set` (in order: a later value wins).
    pub fn new<V: AsRef<OsStr>>(clear: &[&str], set: &[(&str, V)]) -> ScopedEnv {
        static LOCK: Mutex<()> = Mutex::new(());
        let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let names = clear.iter().chain(set.iter().map(|(name, _)| name));
        let saved = names
            .map(|name| (OsString::from(name), std::env::var_os(name)))
            .collect();
        for name in clear {
            std::env::remove_var(name);
        }
        for (name, value) in set {
            std::env::set_var(name, value);
        }
        ScopedEnv { saved, _lock: lock }
    }
}

impl Drop for ScopedEnv {
    fn drop(&mut self) {
        // In reverse, so a name saved twice ends with its first value.
        for (name, value) in self.saved.iter().rev() {
            match value {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
        }
    }
}
