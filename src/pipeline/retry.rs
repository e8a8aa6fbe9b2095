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
    /// Retry-After when given, else full jitter.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with(&mut fastrand::Rng::new(), attempt, retry_after)
    }

    /// [`delay`](Self::delay) drawing from `rng` (tests seed it).
    ///
    /// Full jitter, as AWS recommends ("Exponential Backoff And Jitter",
    /// AWS Architecture Blog): uniform in `[0, ceiling]` where the ceiling
    /// is `min(cap, base * 2^(attempt-1))`. Drawing from the whole range,
    /// not its upper half, spreads clients that failed together the most.
    pub fn delay_with(
        &self,
        rng: &mut fastrand::Rng,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        Duration::from_millis(rng.u64(0..=ceiling))
    }

    /// The most [`delay`](Self::delay) waits before retry `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        exp.min(self.cap)
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
    fn ceiling_grows_and_is_capped() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(800),
            ..Default::default()
        };
        let ceilings: Vec<u64> = (1..=6).map(|a| p.ceiling(a).as_millis() as u64).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 800, 800]);
        assert_eq!(p.ceiling(u32::MAX), p.cap, "no overflow");
    }

    /// Full jitter is uniform on [0, ceiling]: many seeded draws, compared
    /// with that distribution by the Kolmogorov–Smirnov statistic. The
    /// old "equal jitter" ([ceiling/2, ceiling]) has D = 0.5 and no draw
    /// below half the ceiling.
    #[test]
    fn full_jitter_is_uniform_from_zero_to_the_ceiling() {
        let p = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(13);
        for attempt in [1, 3, 7] {
            let ceiling = p.ceiling(attempt).as_millis() as f64;
            let n = 20_000;
            let mut draws: Vec<f64> = (0..n)
                .map(|_| p.delay_with(&mut rng, attempt, None).as_millis() as f64)
                .collect();
            draws.sort_by(f64::total_cmp);
            assert!(draws[n - 1] <= ceiling, "never above the ceiling");
            assert!(
                draws[0] < ceiling * 0.01,
                "reaches down to 0: min {} of {ceiling}",
                draws[0]
            );
            let mean = draws.iter().sum::<f64>() / n as f64;
            assert!(
                (mean - ceiling / 2.0).abs() < ceiling * 0.02,
                "mean {mean} near {}",
                ceiling / 2.0
            );
            // KS statistic against U(0, ceiling); the 0.1% critical value
            // for n = 20,000 is 1.95 / sqrt(n) = 0.0138.
            let d = draws
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let f = x / ceiling;
                    (f - i as f64 / n as f64).max((i + 1) as f64 / n as f64 - f)
                })
                .fold(0.0, f64::max);
            assert!(
                d < 1.95 / (n as f64).sqrt(),
                "KS D = {d} (attempt {attempt})"
            );
        }
    }

    #[test]
    fn statuses() {
        assert!(retryable_status(429) && retryable_status(403) && retryable_status(503));
        assert!(!retryable_status(404) && !retryable_status(416) && !retryable_status(200));
    }
}
