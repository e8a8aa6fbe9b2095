//! Bounded retries with exponential backoff, full jitter and Retry-After.
//!
//! CMS sits behind a CDN/WAF that answers bursts with 429 or an HTML 403,
//! and 6–9 GB bodies get cut mid-stream; all of these are worth a bounded
//! number of patient retries, everything else fails the file at once.

use std::time::Duration;

/// How many times and how patiently to retry one file.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts that made no progress before the file is `failed`.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// Upper bound on a server's Retry-After, so a hostile value cannot
    /// park a run for hours.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based): the server's
    /// Retry-After when given, else full jitter over `base * 2^(attempt-1)`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let ceiling = exp.min(self.cap);
        let millis = ceiling.as_millis() as u64;
        Duration::from_millis(fastrand::u64(millis / 2..=millis.max(1)))
    }
}

/// Parses a Retry-After header: delta-seconds or an HTTP-date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Whether an HTTP status is worth retrying. 403 is included because the
/// CMS CDN's WAF throttles with 403 pages; the attempt bound keeps a real
/// 403 from looping.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 403 | 408 | 425 | 429 | 500..=599)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, parse_retry_after("3")), Duration::from_secs(3));
        assert_eq!(p.delay(1, parse_retry_after("99999")), p.max_retry_after);
    }

    #[test]
    fn retry_after_http_date_in_the_past_is_zero() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(800),
            ..Default::default()
        };
        for _ in 0..50 {
            let d1 = p.delay(1, None);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d10 = p.delay(10, None);
            assert!(
                d10 >= Duration::from_millis(400) && d10 <= Duration::from_millis(800),
                "{d10:?}"
            );
        }
    }

    #[test]
    fn statuses() {
        assert!(retryable_status(429) && retryable_status(403) && retryable_status(503));
        assert!(!retryable_status(404) && !retryable_status(416) && !retryable_status(200));
    }
}
