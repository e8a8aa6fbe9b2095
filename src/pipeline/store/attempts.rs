//! What the S3 client tried for one file: its calls, their HTTP attempts,
//! and why each retried attempt failed.
//!
//! The SDK retries throttling, 5xx, timeouts and dropped connections by
//! itself (standard mode, bounded attempts, exponential backoff with
//! jitter) and says nothing about it. An interceptor on the store's client
//! counts what happened into the log of the file being processed (a task
//! local: a file's calls all run inside its task, parts included), so the
//! audit shows the faults a file survived, not only that it got through.

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde::{Deserialize, Serialize};

/// At most this many retry causes are kept per file; the counters go on.
const MAX_CAUSES: usize = 20;

/// A file's S3 traffic, as its audit records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Attempts {
    /// S3 calls made for the file (HEAD, PUT, each part, completion…).
    pub calls: u32,
    /// HTTP attempts: the calls plus their retries.
    pub attempts: u32,
    pub retries: u32,
    /// Why the retried attempts failed (`UploadPart: HTTP 503 SlowDown`),
    /// the first few.
    pub retry_causes: Vec<String>,
}

tokio::task_local! {
    static LOG: Arc<Mutex<S3Attempts>>;
}

/// Runs `f`, recording the S3 calls made inside it.
pub async fn observed<F: Future>(f: F) -> (F::Output, S3Attempts) {
    let log = Arc::new(Mutex::new(S3Attempts::default()));
    let out = LOG.scope(Arc::clone(&log), f).await;
    let attempts = log.lock().map(|g| g.clone()).unwrap_or_default();
    (out, attempts)
}

fn with_log(f: impl FnOnce(&mut S3Attempts)) {
    let _ = LOG.try_with(|log| {
        if let Ok(mut g) = log.lock() {
            f(&mut g);
        }
    });
}

/// Why the previous attempt of this call failed; present when the
/// attempt that starts now is a retry.
#[derive(Debug, Clone)]
struct LastFailure(String);

impl Storable for LastFailure {
    type Storer = StoreReplace<Self>;
}

/// The interceptor installed on the store's S3 client.
#[derive(Debug)]
pub struct AttemptLog;

impl Intercept for AttemptLog {
    fn name(&self) -> &'static str {
        "openpay.AttemptLog"
    }

    fn read_before_execution(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        with_log(|l| l.calls += 1);
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let retried = cfg.load::<LastFailure>().map(|f| f.0.clone());
        cfg.interceptor_state().unset::<LastFailure>();
        with_log(|l| {
            l.attempts += 1;
            if let Some(cause) = retried {
                l.retries += 1;
                if l.retry_causes.len() < MAX_CAUSES {
                    l.retry_causes.push(cause);
                }
            }
        });
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Err(err)) = ctx.output_or_error() else {
            return Ok(());
        };
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "S3".into());
        let cause = match ctx.response() {
            Some(r) => {
                let code = r.body().bytes().and_then(error_code);
                match code {
                    Some(c) => format!("HTTP {} {c}", r.status().as_u16()),
                    None => format!("HTTP {}", r.status().as_u16()),
                }
            }
            None if err.is_timeout_error()
                || err.as_connector_error().is_some_and(|c| c.is_timeout()) =>
            {
                "timed out".into()
            }
            None if err.is_connector_error() => "connection failed or was cut".into(),
            None => "no response".into(),
        };
        cfg.interceptor_state()
            .store_put(LastFailure(format!("{op}: {cause}")));
        Ok(())
    }
}

/// The `<Code>` of an S3 error document.
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(text[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_come_from_the_document() {
        let doc =
            b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>x</Message></Error>";
        assert_eq!(error_code(doc).as_deref(), Some("SlowDown"));
        assert_eq!(error_code(b"<html>busy</html>"), None);
        assert_eq!(error_code(&[0xff, 0xfe]), None);
    }

    #[tokio::test]
    async fn outside_a_file_nothing_is_recorded() {
        with_log(|l| l.calls += 1);
        let ((), log) = observed(async { with_log(|l| l.calls += 1) }).await;
        assert_eq!(log.calls, 1);
    }
}
