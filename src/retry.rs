//! Bounded retries with exponential backoff and jitter, for calls that are safe to repeat:
//! registry reads (resolve, manifests, blobs), blob uploads (a blob is named by its digest, so
//! uploading it twice stores it once), API server reads and server-side apply (the same body
//! gives the same object). Only transient failures are retried: 429, 5xx, refused or reset
//! connections and timeouts. Conflicts, 4xx answers and bad content are reported at once.
//!
//! `PERSES_OCI_RETRIES` (retries after the first attempt, default 4) and
//! `PERSES_OCI_RETRY_BASE_MS` (first delay, default 200 ms, doubled each time, capped at 5 s)
//! tune it; tests use them to keep fault injection fast. Each retry is logged at info level with
//! the reason, which is built from status codes and error kinds only, never from credentials.

use std::future::Future;
use std::time::Duration;

pub const RETRIES_ENV: &str = "PERSES_OCI_RETRIES";
pub const BASE_MS_ENV: &str = "PERSES_OCI_RETRY_BASE_MS";
pub const DEFAULT_RETRIES: u32 = 4;
pub const DEFAULT_BASE_MS: u64 = 200;
/// No single wait is longer than this, whatever the attempt number.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// How many times, and how long to wait between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Retries after the first attempt (0: no retry).
    pub retries: u32,
    pub base: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            retries: DEFAULT_RETRIES,
            base: Duration::from_millis(DEFAULT_BASE_MS),
        }
    }
}

impl Policy {
    /// The defaults, overridden by the environment; an unparsable value keeps the default, as
    /// these are knobs for tests and emergencies rather than configuration.
    pub fn from_env() -> Policy {
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let d = Policy::default();
        Policy {
            retries: num(RETRIES_ENV)
                .map(|n| n.min(100) as u32)
                .unwrap_or(d.retries),
            base: num(BASE_MS_ENV)
                .map(Duration::from_millis)
                .unwrap_or(d.base),
        }
    }

    /// The wait before retry `n` (0-based): `base * 2^n`, capped, then scaled by a random
    /// factor in [0.5, 1) so that many clients failing together do not come back together.
    pub fn delay(&self, n: u32) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << n.min(16))
            .min(MAX_DELAY.max(self.base));
        full.mul_f64(0.5 + jitter() * 0.5)
    }
}

/// A number in [0, 1) that differs between calls and processes (no need for a real RNG).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `op` until it succeeds, fails with an error `transient` does not name (it returns the
/// reason to log for a retryable one), or the retries are used up; returns the last result.
pub async fn retry<T, E, F, Fut>(
    what: impl AsRef<str>,
    transient: impl Fn(&E) -> Option<String>,
    op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_with(Policy::from_env(), what, transient, op).await
}

/// `retry` with an explicit policy.
pub async fn retry_with<T, E, F, Fut>(
    policy: Policy,
    what: impl AsRef<str>,
    transient: impl Fn(&E) -> Option<String>,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let what = what.as_ref();
    let mut n = 0;
    loop {
        let err = match op().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(reason) = transient(&err) else {
            return Err(err);
        };
        if n >= policy.retries {
            if policy.retries > 0 {
                tracing::warn!(
                    "{what}: {reason}; gave up after {} attempts",
                    policy.retries + 1
                );
            }
            return Err(err);
        }
        let wait = policy.delay(n);
        tracing::info!(
            "{what}: {reason}; retry {} of {} in {} ms",
            n + 1,
            policy.retries,
            wait.as_millis()
        );
        tokio::time::sleep(wait).await;
        n += 1;
    }
}

/// Whether an HTTP status is worth another try: too many requests, or a server-side failure.
pub fn transient_status(code: u16) -> bool {
    code == 429 || (500..=599).contains(&code)
}

/// The retryable failures of a registry call.
pub fn oci_transient(e: &oci_client::errors::OciDistributionError) -> Option<String> {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::ServerError { code, .. } if transient_status(*code) => Some(format!("HTTP {code}")),
        // A 429 with a distribution error body is parsed into an envelope, status dropped.
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|x| {
                let c = format!("{:?}", x.code);
                c.eq_ignore_ascii_case("TooManyRequests") || c.eq_ignore_ascii_case("Unavailable")
            }) =>
        {
            Some("the registry asked to slow down (TOOMANYREQUESTS)".into())
        }
        E::RequestError(re) => {
            if let Some(s) = re.status() {
                transient_status(s.as_u16()).then(|| format!("HTTP {}", s.as_u16()))
            } else if re.is_connect() {
                Some("cannot connect".into())
            } else if re.is_timeout() {
                Some("timed out".into())
            } else if re.is_request() || re.is_body() || re.is_decode() {
                // A connection closed or reset while sending or reading the answer.
                Some("the connection broke".into())
            } else {
                None
            }
        }
        E::IoError(io) => io_transient(io),
        _ => None,
    }
}

fn io_transient(io: &std::io::Error) -> Option<String> {
    use std::io::ErrorKind as K;
    matches!(
        io.kind(),
        K::ConnectionReset
            | K::ConnectionAborted
            | K::ConnectionRefused
            | K::BrokenPipe
            | K::TimedOut
            | K::UnexpectedEof
    )
    .then(|| format!("connection: {}", io.kind()))
}

/// The retryable failures of an API server call. 409 is not among them: for server-side apply
/// it is a field conflict that only `--force-conflicts` resolves.
pub fn kube_transient(e: &kube::Error) -> Option<String> {
    match e {
        kube::Error::Api(s) if transient_status(s.code) => {
            Some(format!("HTTP {} {}", s.code, s.reason))
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            Some("cannot reach the API server".into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast(retries: u32) -> Policy {
        Policy {
            retries,
            base: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_then_succeeds() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, u16> = retry_with(
            fast(4),
            "t",
            |c: &u16| transient_status(*c).then(|| c.to_string()),
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 { Err(503) } else { Ok(n) }
            },
        )
        .await;
        assert_eq!(r, Ok(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_bound_and_never_retries_permanent_errors() {
        let calls = AtomicU32::new(0);
        let r: Result<(), u16> = retry_with(
            fast(3),
            "t",
            |c: &u16| transient_status(*c).then(|| c.to_string()),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(429)
            },
        )
        .await;
        assert_eq!(r, Err(429));
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        let calls = AtomicU32::new(0);
        let r: Result<(), u16> = retry_with(
            fast(3),
            "t",
            |c: &u16| transient_status(*c).then(|| c.to_string()),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(409)
            },
        )
        .await;
        assert_eq!(r, Err(409));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn delays_grow_are_jittered_and_capped() {
        let p = Policy {
            retries: 10,
            base: Duration::from_millis(200),
        };
        for n in 0..10 {
            let full = Duration::from_millis(200 * (1 << n)).min(MAX_DELAY);
            let d = p.delay(n);
            assert!(d >= full / 2 && d < full, "retry {n}: {d:?} for {full:?}");
        }
        let a: Vec<Duration> = (0..8).map(|_| p.delay(3)).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]), "no jitter: {a:?}");
    }

    #[test]
    fn statuses() {
        for c in [429, 500, 502, 503, 504] {
            assert!(transient_status(c), "{c}");
        }
        for c in [400, 401, 403, 404, 409, 422] {
            assert!(!transient_status(c), "{c}");
        }
    }
}
