//! The fault proxy itself, against the CMS fixture: unfaulted requests
//! pass byte for byte; each fault does what it says and is logged.

use std::time::{Duration, Instant};

use crate::common::cms::{CmsServer, payments_csv};
use crate::common::proxy::{Fault, FaultProxy, Nth, Rule};

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_relays_bytes_unchanged_and_injects_what_it_is_told() {
    let cms = CmsServer::start();
    let body = payments_csv(1, 400_000);
    let path = cms.publish(2023, "General", "f.csv", body.clone());
    let proxy = FaultProxy::start(cms.addr);
    let url = format!("{}{path}", proxy.url());
    let client = reqwest::Client::new();
    let get = || client.get(&url).send();

    proxy.add_rule(Rule::new(
        Some("GET"),
        "f\\.csv$",
        Nth::Only(2),
        Fault::slow_down(),
    ));
    proxy.add_rule(Rule::new(
        Some("GET"),
        "f\\.csv$",
        Nth::Only(3),
        Fault::ResetResponseAfter(1000),
    ));
    proxy.add_rule(Rule::new(
        Some("GET"),
        "f\\.csv$",
        Nth::Only(4),
        Fault::Latency(Duration::from_millis(600)),
    ));
    proxy.add_rule(Rule::new(
        Some("GET"),
        "f\\.csv$",
        Nth::Only(5),
        Fault::Stall(Duration::from_secs(30)),
    ));

    let r = get().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &body[..],
        "relayed unchanged"
    );

    let r = get().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(r.text().await.unwrap().contains("<Code>SlowDown</Code>"));

    let cut = match get().await {
        Ok(r) => r.bytes().await.is_err(),
        Err(_) => true,
    };
    assert!(cut, "the response was cut");

    let t = Instant::now();
    let r = get().await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(600));
    assert_eq!(r.bytes().await.unwrap().len(), body.len());

    let stalled = tokio::time::timeout(Duration::from_secs(2), get()).await;
    assert!(stalled.is_err(), "nothing came back while stalled");

    let kinds: Vec<_> = proxy
        .log()
        .iter()
        .map(|e| e.fault.as_ref().map(Fault::kind))
        .collect();
    assert_eq!(
        kinds,
        [
            None,
            Some("503_slow_down"),
            Some("reset_response"),
            Some("latency"),
            Some("stall")
        ]
    );
    assert_eq!(proxy.log()[0].upstream_status, Some(200));
}
