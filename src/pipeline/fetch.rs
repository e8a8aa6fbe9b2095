//! Ranged reads of one file from the source, HTTP or local directory, as a
//! stream of chunks; the downloader decides what to do with them.

use std::io::SeekFrom;
use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::retry::{parse_retry_after, retryable_status};
use super::source::{Location, Source};

/// What identifies one version of the remote file, for If-Range. Only a
/// strong ETag or a Last-Modified date is valid there (RFC 9110 §13.1.5).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    Etag(String),
    LastModified(String),
}

impl Validator {
    fn header_value(&self) -> &str {
        match self {
            Validator::Etag(v) | Validator::LastModified(v) => v,
        }
    }
}

/// What a HEAD (or stat) says about the file.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub size: Option<u64>,
    pub validator: Option<Validator>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<std::time::Duration>,
    },
    #[error("{0}")]
    Network(String),
    /// Not worth retrying: 404, a local file missing, an unusable answer.
    #[error("{0}")]
    Fatal(String),
}

impl FetchError {
    pub fn retryable(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => retryable_status(*status),
            FetchError::Network(_) => true,
            FetchError::Fatal(_) => false,
        }
    }
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Bytes, FetchError>> + Send>>;

/// An open body: either the whole file or the tail from the asked offset.
pub struct Body {
    /// Offset of the first byte of `chunks` in the file.
    pub start: u64,
    /// Total file size when the source told us.
    pub total: Option<u64>,
    pub validator: Option<Validator>,
    pub chunks: ChunkStream,
}

fn validator_of(h: &reqwest::header::HeaderMap) -> Option<Validator> {
    let etag = h
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .filter(|e| !e.starts_with("W/"));
    if let Some(e) = etag {
        return Some(Validator::Etag(e.to_string()));
    }
    h.get("last-modified")
        .and_then(|v| v.to_str().ok())
        .map(|v| Validator::LastModified(v.to_string()))
}

fn status_error(resp: &reqwest::Response) -> FetchError {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    FetchError::Status {
        status,
        retry_after,
    }
}

fn network(e: reqwest::Error) -> FetchError {
    FetchError::Network(format!("{e}"))
}

/// HEAD for size and validator (falls back to nothing if HEAD is refused:
/// some CDNs answer HEAD oddly; the GET still carries both).
pub async fn probe(source: &Source, loc: &Location) -> Result<Probe, FetchError> {
    match loc {
        Location::File(p) => {
            let meta = tokio::fs::metadata(p)
                .await
                .map_err(|e| FetchError::Fatal(format!("{}: {e}", p.display())))?;
            Ok(Probe {
                size: Some(meta.len()),
                validator: None,
            })
        }
        Location::Http(url) => {
            let client = source.client().expect("http location has a client");
            let resp = client.head(url.clone()).send().await.map_err(network)?;
            if !resp.status().is_success() {
                let err = status_error(&resp);
                return if matches!(
                    err,
                    FetchError::Status {
                        status: 404 | 410,
                        ..
                    }
                ) {
                    Err(FetchError::Fatal(format!(
                        "{url} answered HTTP {} (not found)",
                        resp.status().as_u16()
                    )))
                } else {
                    Err(err)
                };
            }
            Ok(Probe {
                size: resp.content_length(),
                validator: validator_of(resp.headers()),
            })
        }
    }
}

/// Opens the file at `offset`. With `offset > 0` and a validator, sends
/// `Range` + `If-Range`: the server answers 206 with the tail when the file
/// is unchanged, or 200 with the whole (new) file when it changed.
pub async fn open(
    source: &Source,
    loc: &Location,
    offset: u64,
    if_range: Option<&Validator>,
) -> Result<Body, FetchError> {
    match loc {
        Location::File(p) => {
            let mut f = tokio::fs::File::open(p)
                .await
                .map_err(|e| FetchError::Fatal(format!("{}: {e}", p.display())))?;
            let total = f
                .metadata()
                .await
                .map_err(|e| FetchError::Fatal(e.to_string()))?
                .len();
            let start = offset.min(total);
            f.seek(SeekFrom::Start(start))
                .await
                .map_err(|e| FetchError::Fatal(e.to_string()))?;
            let chunks = futures::stream::try_unfold(f, |mut f| async move {
                let mut buf = vec![0u8; 256 * 1024];
                let n = f
                    .read(&mut buf)
                    .await
                    .map_err(|e| FetchError::Network(e.to_string()))?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                Ok(Some((Bytes::from(buf), f)))
            });
            Ok(Body {
                start,
                total: Some(total),
                validator: None,
                chunks: Box::pin(chunks),
            })
        }
        Location::Http(url) => {
            let client = source.client().expect("http location has a client");
            let mut req = client.get(url.clone());
            if offset > 0 {
                req = req.header("range", format!("bytes={offset}-"));
                if let Some(v) = if_range {
                    req = req.header("if-range", v.header_value());
                }
            }
            let resp = req.send().await.map_err(network)?;
            let validator = validator_of(resp.headers());
            match resp.status().as_u16() {
                200 => {
                    let total = resp.content_length();
                    Ok(Body {
                        start: 0,
                        total,
                        validator,
                        chunks: Box::pin(resp.bytes_stream().map(|r| r.map_err(network))),
                    })
                }
                206 => {
                    let range = resp
                        .headers()
                        .get("content-range")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let (start, total) = parse_content_range(&range).ok_or_else(|| {
                        FetchError::Network(format!("206 with an unusable Content-Range {range:?}"))
                    })?;
                    if start != offset {
                        return Err(FetchError::Network(format!(
                            "asked for bytes from {offset}, got a range from {start}"
                        )));
                    }
                    Ok(Body {
                        start,
                        total,
                        validator,
                        chunks: Box::pin(resp.bytes_stream().map(|r| r.map_err(network))),
                    })
                }
                404 | 410 => Err(FetchError::Fatal(format!(
                    "{url} answered HTTP {} (not found)",
                    resp.status().as_u16()
                ))),
                _ => Err(status_error(&resp)),
            }
        }
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL); TOTAL may be `*`.
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
