//! An in-process HTTP server shaped like the CMS source: the DKAN catalog,
//! CSV downloads with Range/If-Range, strong ETags and Last-Modified, and
//! the faults the real CDN produces (429 with Retry-After, a WAF's HTML 403,
//! connections dropped mid-body), plus throttling and byte counters; and
//! the DKAN datastore's record count and column names per dataset, which
//! can lie, be missing or be slow.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// One injected misbehaviour, consumed by the next GET of its path.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and an optional Retry-After (seconds).
    Status(u16, Option<u64>),
    /// Akamai-style "Access Denied" HTML page with 403.
    WafForbidden,
    /// Send the headers for the full answer, then drop the connection
    /// after this many body bytes.
    DropAfter(u64),
    /// A CDN's "down for maintenance" HTML page with this status (CMS's
    /// host has served one with 200 as well as with 503).
    MaintenancePage(u16),
    /// Serve only the first this many bytes as if they were the whole file
    /// (a 200 with a matching Content-Length): a cut no length check sees.
    Truncate(u64),
}

/// What the datastore answers for one dataset (unset: 404).
#[derive(Debug, Clone)]
pub enum Datastore {
    /// `count` and the column names (the schema's descriptions), in order.
    Answer {
        count: u64,
        columns: Vec<String>,
    },
    /// The right answer, after this long.
    Slow(Duration, u64, Vec<String>),
    NotFound,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub user_agent: Option<String>,
}

struct FileEntry {
    body: Bytes,
    etag: String,
    last_modified: String,
}

#[derive(Default)]
struct Inner {
    files: HashMap<String, FileEntry>,
    catalog: Vec<serde_json::Value>,
    raw_catalog: Option<String>,
    faults: HashMap<String, VecDeque<Fault>>,
    served: HashMap<String, u64>,
    requests: Vec<Request>,
    /// Faults served so far, per path: the injector's own log.
    injected: HashMap<String, Vec<Fault>>,
    /// Bytes per second for file bodies; `None` = as fast as possible.
    throttle: Option<u64>,
    /// Per path: bodies stop at this offset until [`CmsServer::release`].
    holds: HashMap<String, u64>,
    /// File bodies being sent right now, and the most ever at once.
    in_flight: u64,
    max_in_flight: u64,
    datastore: HashMap<String, Datastore>,
}

pub struct CmsServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub const CATALOG_PATH: &str = "/api/1/metastore/schemas/dataset/items";

/// Where the datastore of a dataset is queried.
pub fn datastore_path(dataset_id: &str) -> String {
    format!("/api/1/datastore/query/{dataset_id}/0")
}

/// The catalog identifier [`CmsServer::publish`] gives a dataset.
pub fn dataset_id(year: i32, word: &str) -> String {
    format!("{}-{year}", word.to_lowercase())
}

impl CmsServer {
    pub fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = Arc::clone(&inner);
        let (addr, tx) =
            super::spawn_server("CMS fixture server", move |listener, stop| async move {
                let app = axum::Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await
                    .unwrap();
            });
        CmsServer {
            addr,
            inner,
            _shutdown: tx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publishes a file and its catalog entry; returns the file's URL path.
    pub fn publish(&self, year: i32, word: &str, name: &str, body: Vec<u8>) -> String {
        let path = format!("/openpayments/PGYR{year}_P01302025_01212025/{name}");
        self.set_file(&path, body);
        self.catalog_entry_titled(year, word, &format!("{}{path}", self.url()));
        path
    }

    /// [`publish`](Self::publish), with the catalog's download URL on
    /// `base` (a proxy in front of this server) instead of this server.
    pub fn publish_at(
        &self,
        base: &str,
        year: i32,
        word: &str,
        name: &str,
        body: Vec<u8>,
    ) -> String {
        let path = format!("/openpayments/PGYR{year}_P01302025_01212025/{name}");
        self.set_file(&path, body);
        self.catalog_entry_titled(year, word, &format!("{base}{path}"));
        path
    }

    fn catalog_entry_titled(&self, year: i32, word: &str, url: &str) {
        let id = dataset_id(year, word);
        self.inner.lock().unwrap().catalog.push(serde_json::json!({
            "@type": "dcat:Dataset",
            "identifier": id,
            "title": format!("{year} {word} Payment Data"),
            "distribution": [{"@type": "dcat:Distribution", "identifier": format!("{id}-dist"), "downloadURL": url, "mediaType": "text/csv"}]
        }));
    }

    /// Sets what the datastore answers for a dataset.
    pub fn set_datastore(&self, dataset_id: &str, answer: Datastore) {
        self.inner
            .lock()
            .unwrap()
            .datastore
            .insert(dataset_id.to_string(), answer);
    }

    /// Adds a catalog entry pointing at an arbitrary download URL.
    pub fn catalog_entry(&self, title: &str, download_url: &str) {
        self.inner.lock().unwrap().catalog.push(serde_json::json!({
            "title": title, "distribution": [{"downloadURL": download_url}]
        }));
    }

    /// Serves this text instead of the generated catalog.
    pub fn set_raw_catalog(&self, text: &str) {
        self.inner.lock().unwrap().raw_catalog = Some(text.to_string());
    }

    /// Creates or replaces a file (a new version gets a new ETag).
    pub fn set_file(&self, path: &str, body: Vec<u8>) {
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..16]);
        let last_modified = httpdate_now();
        self.inner.lock().unwrap().files.insert(
            path.to_string(),
            FileEntry {
                body: Bytes::from(body),
                etag,
                last_modified,
            },
        );
    }

    pub fn push_fault(&self, path: &str, fault: Fault) {
        self.inner
            .lock()
            .unwrap()
            .faults
            .entry(path.to_string())
            .or_default()
            .push_back(fault);
    }

    pub fn throttle(&self, bytes_per_sec: Option<u64>) {
        self.inner.lock().unwrap().throttle = bytes_per_sec;
    }

    /// Every GET body of `path` pauses once `offset` bytes of the file are
    /// sent, until [`release`](Self::release): a test then acts "while the
    /// download is under way" for as long as it needs, however busy the
    /// machine, instead of racing a throttled transfer.
    pub fn hold_at(&self, path: &str, offset: u64) {
        self.inner
            .lock()
            .unwrap()
            .holds
            .insert(path.to_string(), offset);
    }

    pub fn release(&self, path: &str) {
        self.inner.lock().unwrap().holds.remove(path);
    }

    /// File bodies being sent right now.
    pub fn in_flight(&self) -> u64 {
        self.inner.lock().unwrap().in_flight
    }

    /// The most file bodies ever sent at the same time.
    pub fn max_in_flight(&self) -> u64 {
        self.inner.lock().unwrap().max_in_flight
    }

    /// Body bytes sent for a path so far.
    pub fn served(&self, path: &str) -> u64 {
        self.inner
            .lock()
            .unwrap()
            .served
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn reset_counters(&self) {
        let mut g = self.inner.lock().unwrap();
        g.served.clear();
        g.requests.clear();
        g.max_in_flight = g.in_flight;
    }

    /// The faults actually served for `path`, in order.
    pub fn injected(&self, path: &str) -> Vec<Fault> {
        self.inner
            .lock()
            .unwrap()
            .injected
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.inner
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

fn httpdate_now() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let path = uri.path().to_string();
    let (range, if_range) = (header(&headers, "range"), header(&headers, "if-range"));
    let request = Request {
        method: method.to_string(),
        path: path.clone(),
        range: range.clone(),
        if_range: if_range.clone(),
        user_agent: header(&headers, "user-agent"),
    };
    if let Some(id) = path
        .strip_prefix("/api/1/datastore/query/")
        .and_then(|rest| rest.strip_suffix("/0"))
    {
        // The guard lives in this block only: the answer may be awaited.
        let answer = {
            let mut g = inner.lock().unwrap();
            g.requests.push(request);
            g.datastore.get(id).cloned().unwrap_or(Datastore::NotFound)
        };
        let (count, columns) = match answer {
            Datastore::NotFound => {
                return Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Body::from(r#"{"message":"not found"}"#))
                    .unwrap();
            }
            Datastore::Slow(delay, count, columns) => {
                tokio::time::sleep(delay).await;
                (count, columns)
            }
            Datastore::Answer { count, columns } => (count, columns),
        };
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(datastore_answer(id, &uri, count, &columns)))
            .unwrap();
    }
    let mut g = inner.lock().unwrap();
    g.requests.push(request);
    // Faults hit GETs (downloads, the catalog), not the planner's HEAD probes.
    let fault = if method == Method::GET {
        g.faults.get_mut(&path).and_then(VecDeque::pop_front)
    } else {
        None
    };
    // The catalog is small and sent whole: it cannot be cut mid-body.
    let catalog = path == CATALOG_PATH && matches!(fault, None | Some(Fault::DropAfter(_)));
    if let Some(f) = fault.as_ref().filter(|_| !catalog) {
        g.injected.entry(path.clone()).or_default().push(f.clone());
    }
    if catalog {
        let text = g
            .raw_catalog
            .clone()
            .unwrap_or_else(|| serde_json::to_string(&g.catalog).unwrap());
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(text))
            .unwrap();
    }
    match fault {
        Some(Fault::MaintenancePage(code)) => {
            return Response::builder()
                .status(code)
                .header("content-type", "text/html; charset=utf-8")
                .body(Body::from("<!DOCTYPE html><html><head><title>Site Maintenance</title></head><body><h1>We&rsquo;ll be back soon!</h1><p>openpaymentsdata.cms.gov is down for scheduled maintenance.</p></body></html>"))
                .unwrap();
        }
        Some(Fault::Status(code, retry_after)) => {
            let mut b = Response::builder().status(code);
            if let Some(s) = retry_after {
                b = b.header("retry-after", s.to_string());
            }
            return b.body(Body::from("slow down")).unwrap();
        }
        Some(Fault::WafForbidden) => {
            return Response::builder()
                .status(403)
                .header("content-type", "text/html")
                .body(Body::from("<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD><BODY><H1>Access Denied</H1>Reference&#32;&#35;18&#46;1</BODY></HTML>"))
                .unwrap();
        }
        _ => {}
    }
    let Some(file) = g.files.get(&path) else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("not found"))
            .unwrap();
    };
    let total = file.body.len() as u64;
    let (etag, lm) = (file.etag.clone(), file.last_modified.clone());
    // If-Range: serve the range only when the validator still matches.
    let range_ok = if_range.as_deref().is_none_or(|v| v == etag || v == lm);
    let start = match range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(s) if range_ok => Some(s),
        _ => None,
    };
    if start.is_some_and(|s| s >= total) {
        return Response::builder()
            .status(416)
            .header("content-range", format!("bytes */{total}"))
            .body(Body::empty())
            .unwrap();
    }
    let from = start.unwrap_or(0);
    let mut body = file.body.slice(from as usize..);
    if let Some(Fault::Truncate(n)) = fault {
        body = body.slice(..(n as usize).min(body.len()));
    }
    let mut b = Response::builder()
        .header("etag", &etag)
        .header("last-modified", &lm)
        .header("accept-ranges", "bytes")
        .header("content-type", "text/csv")
        .header("content-length", body.len().to_string());
    b = match start {
        Some(s) => b
            .status(206)
            .header("content-range", format!("bytes {s}-{}/{total}", total - 1)),
        None => b.status(200),
    };
    if method == Method::HEAD {
        // hyper derives HEAD's Content-Length from the body and sends no
        // bytes, so hand it the body: HEAD then reports the real length.
        return b.body(Body::from(body)).unwrap();
    }
    let drop_after = match fault {
        Some(Fault::DropAfter(n)) => Some(n),
        _ => None,
    };
    let throttle = g.throttle;
    g.in_flight += 1;
    g.max_in_flight = g.max_in_flight.max(g.in_flight);
    drop(g);
    let sending = Sending {
        inner: Arc::clone(&inner),
        path,
        offset: from,
    };
    b.body(Body::from_stream(async_stream(
        sending, body, drop_after, throttle,
    )))
    .unwrap()
}

/// One file body on the wire: counts its bytes and, while it lives, one
/// body in flight.
struct Sending {
    inner: Arc<Mutex<Inner>>,
    path: String,
    /// Where in the file this body starts (a Range request starts late).
    offset: u64,
}

impl Sending {
    fn count(&self, n: u64) {
        *self
            .inner
            .lock()
            .unwrap()
            .served
            .entry(self.path.clone())
            .or_default() += n;
    }

    /// The file offset this body must not pass yet, if it is held.
    fn hold(&self) -> Option<u64> {
        self.inner.lock().unwrap().holds.get(&self.path).copied()
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.inner.lock().unwrap().in_flight -= 1;
    }
}

/// DKAN's answer to `?count=true&results=false&schema=true`: the count
/// and, per distribution, the fields by machine name with the original
/// column name as description (and DKAN's own `record_number`, which has
/// none). Asked without `count=true` it gives no count.
fn datastore_answer(id: &str, uri: &Uri, count: u64, columns: &[String]) -> String {
    let query = uri.query().unwrap_or_default();
    // Written by hand: serde_json's map sorts keys, and the schema lists
    // the fields in file order.
    let mut names: Vec<String> = vec!["record_number".into()];
    let mut fields =
        vec![r#""record_number":{"type":"serial","unsigned":true,"not null":true}"#.to_string()];
    for (i, c) in columns.iter().enumerate() {
        // Machine names are unique: DKAN suffixes a clash.
        let mut name = c.to_lowercase();
        if names.contains(&name) {
            name = format!("{name}_{i}");
        }
        fields.push(format!(
            "{}:{}",
            serde_json::to_string(&name).unwrap(),
            serde_json::json!({"type": "text", "description": c})
        ));
        names.push(name);
    }
    let mut parts = vec![r#""results":[]"#.to_string()];
    if query.contains("count=true") {
        parts.push(format!(r#""count":{count}"#));
    }
    if query.contains("schema=true") {
        parts.push(format!(
            r#""schema":{{{}:{{"fields":{{{}}}}}}}"#,
            serde_json::to_string(&format!("{id}-dist")).unwrap(),
            fields.join(",")
        ));
    }
    format!("{{{}}}", parts.join(","))
}

fn async_stream(
    sending: Sending,
    body: Bytes,
    drop_after: Option<u64>,
    throttle: Option<u64>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    const CHUNK: usize = 64 * 1024;
    futures::stream::unfold(
        (0usize, body, sending),
        move |(pos, body, sending)| async move {
            if pos >= body.len() {
                return None;
            }
            if drop_after.is_some_and(|n| pos as u64 >= n) {
                // Let the bytes already sent reach the client, then cut.
                tokio::time::sleep(Duration::from_millis(150)).await;
                return Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "fixture drops the connection",
                    )),
                    (body.len(), body, sending),
                ));
            }
            let mut end = (pos + CHUNK).min(body.len());
            if let Some(n) = drop_after {
                end = end.min(n as usize).max(pos + 1);
            }
            while let Some(h) = sending.hold() {
                let h = h.saturating_sub(sending.offset) as usize;
                if pos < h {
                    end = end.min(h);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if let Some(rate) = throttle {
                tokio::time::sleep(Duration::from_secs_f64((end - pos) as f64 / rate as f64)).await;
            }
            sending.count((end - pos) as u64);
            Some((Ok(body.slice(pos..end)), (end, body, sending)))
        },
    )
}

/// The real 91-column General Payments header (`layouts/`, see its README).
pub fn real_header() -> String {
    layout_header("General")
}

/// The header CMS publishes for the dataset whose catalog title word is
/// `word` (`General`, `Research`, `Ownership`), from the layouts the binary
/// also embeds (`layouts/`, sources in its README): a test file of a
/// dataset is written with that dataset's own header, so its audit finds
/// no unknown header.
pub fn layout_header(word: &str) -> String {
    let file = match word {
        "General" => "general-payments.91.csv",
        "Research" => "research-payments.176.csv",
        "Ownership" => "ownership-payments.29.csv",
        other => panic!("no layout for the dataset word {other:?}"),
    };
    let path = super::repo_root().join("layouts").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the real header {} is needed by the CMS fixture: {e}",
            path.display()
        )
    });
    let header = text.lines().next().unwrap().to_string();
    let columns: usize = file.split('.').nth(1).unwrap().parse().unwrap();
    assert_eq!(header.split(',').count(), columns, "{file}");
    header
}

/// A General Payments CSV shaped like the real one: see [`dataset_csv`].
pub fn payments_csv(seed: u64, min_bytes: usize) -> Vec<u8> {
    dataset_csv("General", seed, min_bytes)
}

/// A CSV shaped like the real ones of the dataset `word`: its real
/// header, quoted fields with commas, doubled quotes and embedded
/// newlines. Deterministic per `seed`; `min_bytes` pads with rows until
/// the file is at least that large.
pub fn dataset_csv(word: &str, seed: u64, min_bytes: usize) -> Vec<u8> {
    let header = layout_header(word);
    let cols = header.split(',').count();
    let mut out = header.into_bytes();
    out.push(b'\n');
    let mut i = 0u64;
    let mut rng = fastrand::Rng::with_seed(seed);
    while out.len() < min_bytes.max(1) || i < 3 {
        let mut row: Vec<String> = (0..cols).map(|c| format!("v{c}-{}", rng.u32(..))).collect();
        row[0] = "UNCHANGED".into();
        row[7] = "\"SMITH, JR\"".into();
        row[9] = "\"O\"\"NEIL\"".into();
        row[11] = format!("\"{} MAIN ST\nSUITE {}\"", rng.u16(..), i);
        out.extend_from_slice(row.join(",").as_bytes());
        out.push(b'\n');
        i += 1;
    }
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
