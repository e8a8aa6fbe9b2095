//! A fault-injecting HTTP/1.1 proxy on loopback, put in front of moto_server
//! or the CMS fixture.
//!
//! It works on bytes: it parses only a request's head (to match rules) and
//! forwards the request unchanged otherwise, so SigV4 signatures (which
//! cover the Host header) stay valid. Every request gets an upstream
//! connection of its own, and both sides are told `Connection: close`
//! (hop-by-hop, never signed): a keep-alive client then simply reconnects,
//! and the end of a response is the end of the upstream connection.
//!
//! Rules match by method, a regex over the request target (path and
//! query: S3 names the operation there, `?partNumber=` is UploadPart) and
//! the n-th matching occurrence; a seeded random rule faults a share of all
//! requests. Every request and what was done to it is logged, so a test
//! proves that the fault it claims to survive was injected.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the proxy does to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Forwards the head and this many body bytes, then resets both sides.
    ResetRequestAfter(u64),
    /// Forwards the request, relays this many bytes of the response (head
    /// included), then resets the client's connection.
    ResetResponseAfter(u64),
    /// Answers by itself, without forwarding (the request body is read).
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Reads the request, then sends nothing for this long, the connection
    /// open; then closes it.
    Stall(Duration),
    /// Waits this long, then forwards normally.
    Latency(Duration),
}

impl Fault {
    /// S3's 503 SlowDown, with Retry-After.
    pub fn slow_down() -> Fault {
        Fault::Respond {
            status: 503,
            headers: vec![("Retry-After".into(), "1".into())],
            body: s3_error("SlowDown", "Please reduce your request rate."),
        }
    }

    /// S3's 500 InternalError.
    pub fn internal_error() -> Fault {
        Fault::Respond {
            status: 500,
            headers: vec![],
            body: s3_error(
                "InternalError",
                "We encountered an internal error. Please try again.",
            ),
        }
    }

    /// `200 OK` whose body is an `<Error>`: what S3 documents that
    /// CompleteMultipartUpload (and CopyObject) may answer.
    pub fn ok_with_error() -> Fault {
        Fault::Respond {
            status: 200,
            headers: vec![],
            body: s3_error(
                "InternalError",
                "We encountered an internal error. Please try again.",
            ),
        }
    }

    /// 404 NoSuchUpload: what a retried completion may meet once the
    /// first attempt completed (and so removed) the upload.
    pub fn no_such_upload() -> Fault {
        Fault::Respond {
            status: 404,
            headers: vec![],
            body: s3_error(
                "NoSuchUpload",
                "The specified multipart upload does not exist.",
            ),
        }
    }

    /// 403 AccessDenied.
    pub fn access_denied() -> Fault {
        Fault::Respond {
            status: 403,
            headers: vec![],
            body: s3_error("AccessDenied", "Access Denied"),
        }
    }

    /// The kind, as the log and the soak's table name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::ResetRequestAfter(_) => "reset_request",
            Fault::ResetResponseAfter(_) => "reset_response",
            Fault::Respond { status: 200, .. } => "200_with_error",
            Fault::Respond { status: 503, .. } => "503_slow_down",
            Fault::Respond { status: 500, .. } => "500_internal",
            Fault::Respond { .. } => "status",
            Fault::Stall(_) => "stall",
            Fault::Latency(_) => "latency",
        }
    }
}

fn s3_error(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>FAULTPROXY</RequestId><HostId>proxy</HostId></Error>"
    )
}

/// Which matching occurrences (1-based) a rule hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nth {
    Only(u32),
    /// The first n.
    First(u32),
    Every,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Option<String>,
    pub target: Regex,
    pub nth: Nth,
    pub fault: Fault,
    seen: u32,
}

impl Rule {
    /// `method` `None` matches any; `target` is a regex over path+query.
    pub fn new(method: Option<&str>, target: &str, nth: Nth, fault: Fault) -> Rule {
        Rule {
            method: method.map(str::to_string),
            target: Regex::new(target).expect("a valid rule regex"),
            nth,
            fault,
            seen: 0,
        }
    }
}

/// Faults a share of all requests, each of a kind drawn at random from
/// those that fit the request (see [`RandomFaults::pick`]).
#[derive(Debug)]
pub struct RandomFaults {
    pub rate: f64,
    rng: fastrand::Rng,
    /// Stall length: must exceed the client's read timeout.
    pub stall: Duration,
}

impl RandomFaults {
    pub fn new(seed: u64, rate: f64, stall: Duration) -> Self {
        Self {
            rate,
            rng: fastrand::Rng::with_seed(seed),
            stall,
        }
    }

    fn pick(&mut self, method: &str, target: &str) -> Option<Fault> {
        if self.rng.f64() >= self.rate {
            return None;
        }
        let complete = method == "POST" && target.contains("uploadId=");
        let mut kinds = vec![
            Fault::slow_down(),
            Fault::internal_error(),
            Fault::Stall(self.stall),
            Fault::Latency(Duration::from_millis(self.rng.u64(100..800))),
            Fault::ResetRequestAfter(self.rng.u64(0..2048)),
            Fault::ResetResponseAfter(self.rng.u64(0..64)),
        ];
        if complete {
            kinds.push(Fault::ok_with_error());
        }
        let i = self.rng.usize(..kinds.len());
        Some(kinds.swap_remove(i))
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Event {
    pub method: String,
    pub target: String,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    /// The upstream's status, when the response was relayed.
    pub upstream_status: Option<u16>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    random: Option<RandomFaults>,
    log: Vec<Event>,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`127.0.0.1:PORT`) on its own thread.
    pub fn start(upstream: SocketAddr) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let (addr, tx) = super::spawn_server("fault proxy", move |listener, stop| async move {
            let accept = async {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let _ = serve(client, upstream, state).await;
                    });
                }
            };
            tokio::select! {
                _ = accept => {}
                _ = stop => {}
            }
        });
        FaultProxy {
            addr,
            state,
            _shutdown: tx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_rule(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    pub fn clear_rules(&self) {
        let mut s = self.state.lock().unwrap();
        s.rules.clear();
        s.random = None;
    }

    pub fn set_random(&self, random: RandomFaults) {
        self.state.lock().unwrap().random = Some(random);
    }

    pub fn log(&self) -> Vec<Event> {
        self.state.lock().unwrap().log.clone()
    }

    /// Logged requests that got a fault of this kind.
    pub fn injected(&self, kind: &str) -> Vec<Event> {
        self.log()
            .into_iter()
            .filter(|e| e.fault.as_ref().is_some_and(|f| f.kind() == kind))
            .collect()
    }
}

/// Where a request's head ends (after the blank line).
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

struct Head {
    bytes: Vec<u8>,
    method: String,
    target: String,
    /// Request body framing.
    content_length: Option<u64>,
    chunked: bool,
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Reads a head; returns it and the bytes read past it.
async fn read_head(s: &mut TcpStream) -> std::io::Result<Option<(Head, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = head_end(&buf) {
            let rest = buf.split_off(end);
            let text = String::from_utf8_lossy(&buf).to_string();
            let mut first = text.lines().next().unwrap_or("").split(' ');
            let method = first.next().unwrap_or("").to_string();
            let target = first.next().unwrap_or("").to_string();
            let head = Head {
                content_length: header_value(&text, "content-length").and_then(|v| v.parse().ok()),
                chunked: header_value(&text, "transfer-encoding")
                    .is_some_and(|v| v.to_ascii_lowercase().contains("chunked")),
                bytes: buf,
                method,
                target,
            };
            return Ok(Some((head, rest)));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `head` with `Connection: close` added before its blank line.
fn with_close(head: &[u8]) -> Vec<u8> {
    let mut out = head[..head.len() - 2].to_vec();
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

/// Reads the rest of a request body (given what was already read).
async fn drain_body(s: &mut TcpStream, head: &Head, mut have: Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 64 * 1024];
    if head.chunked {
        // The zero-size chunk and an empty trailer end the body.
        while !have.windows(5).any(|w| w == b"0\r\n\r\n") {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            have.extend_from_slice(&chunk[..n]);
            if have.len() > 16 {
                have.drain(..have.len() - 16);
            }
        }
        return Ok(());
    }
    let mut left = head
        .content_length
        .unwrap_or(0)
        .saturating_sub(have.len() as u64);
    while left > 0 {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        left = left.saturating_sub(n as u64);
    }
    Ok(())
}

fn reset(s: &TcpStream) {
    #[allow(deprecated)]
    let _ = s.set_linger(Some(Duration::ZERO));
}

fn decide(state: &Mutex<State>, method: &str, target: &str) -> Option<Fault> {
    let mut g = state.lock().unwrap();
    let mut hit = None;
    for rule in g.rules.iter_mut() {
        if rule.method.as_deref().is_some_and(|m| m != method) || !rule.target.is_match(target) {
            continue;
        }
        rule.seen += 1;
        let fires = match rule.nth {
            Nth::Only(n) => rule.seen == n,
            Nth::First(n) => rule.seen <= n,
            Nth::Every => true,
        };
        if fires && hit.is_none() {
            hit = Some(rule.fault.clone());
        }
    }
    if hit.is_none()
        && let Some(r) = g.random.as_mut()
    {
        hit = r.pick(method, target);
    }
    hit
}

fn record(state: &Mutex<State>, head: &Head, fault: Option<Fault>, status: Option<u16>) {
    state.lock().unwrap().log.push(Event {
        method: head.method.clone(),
        target: head.target.clone(),
        fault,
        upstream_status: status,
    });
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
) -> std::io::Result<()> {
    let Some((head, rest)) = read_head(&mut client).await? else {
        return Ok(());
    };
    let fault = decide(&state, &head.method, &head.target);
    match &fault {
        Some(Fault::Respond {
            status,
            headers,
            body,
        }) => {
            record(&state, &head, fault.clone(), None);
            drain_body(&mut client, &head, rest).await?;
            let mut out = format!(
                "HTTP/1.1 {status} Fault\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(body);
            client.write_all(out.as_bytes()).await?;
            client.shutdown().await?;
            return Ok(());
        }
        Some(Fault::Stall(d)) => {
            record(&state, &head, fault.clone(), None);
            drain_body(&mut client, &head, rest).await?;
            tokio::time::sleep(*d).await;
            return Ok(());
        }
        Some(Fault::Latency(d)) => tokio::time::sleep(*d).await,
        _ => {}
    }
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&with_close(&head.bytes)).await?;
    if let Some(Fault::ResetRequestAfter(n)) = &fault {
        record(&state, &head, fault.clone(), None);
        // Never wait for body bytes the request does not have (a GET).
        let body = match (head.content_length, head.chunked) {
            (Some(len), _) => len,
            (None, true) => *n,
            (None, false) => 0,
        };
        let n = &(*n).min(body);
        let mut sent = rest[..rest.len().min(*n as usize)].to_vec();
        let mut chunk = [0u8; 64 * 1024];
        while (sent.len() as u64) < *n {
            let got = client.read(&mut chunk).await?;
            if got == 0 {
                break;
            }
            let take = got.min(*n as usize - sent.len());
            sent.extend_from_slice(&chunk[..take]);
        }
        up.write_all(&sent).await?;
        reset(&up);
        reset(&client);
        return Ok(());
    }
    up.write_all(&rest).await?;
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = up.into_split();
    // Client → upstream: the rest of the body, relayed as it comes.
    let upload = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut uw).await;
    });
    let cut = match &fault {
        Some(Fault::ResetResponseAfter(n)) => Some(*n),
        _ => None,
    };
    let mut status = None;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let mut relayed: u64 = 0;
    let mut head_done = false;
    loop {
        let n = ur.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        let mut out = chunk[..n].to_vec();
        if !head_done {
            buf.extend_from_slice(&out);
            out.clear();
            // Skip interim 1xx heads; mark the final one `Connection: close`.
            while let Some(end) = head_end(&buf) {
                let h = String::from_utf8_lossy(&buf[..end]).to_string();
                let code: u16 = h
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let rest = buf.split_off(end);
                if (100..200).contains(&code) {
                    out.extend_from_slice(&buf);
                    buf = rest;
                    continue;
                }
                status = Some(code);
                if header_value(&h, "connection").is_some() {
                    out.extend_from_slice(&buf);
                } else {
                    out.extend_from_slice(&with_close(&buf));
                }
                out.extend_from_slice(&rest);
                head_done = true;
                break;
            }
        }
        if let Some(limit) = cut {
            let room = limit.saturating_sub(relayed) as usize;
            if out.len() >= room {
                cw.write_all(&out[..room]).await?;
                record(&state, &head, fault.clone(), status);
                reset(cw.as_ref());
                upload.abort();
                return Ok(());
            }
        }
        relayed += out.len() as u64;
        cw.write_all(&out).await?;
    }
    record(&state, &head, fault, status);
    upload.abort();
    let _ = cw.shutdown().await;
    Ok(())
}
