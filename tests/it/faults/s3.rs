//! S3 answering 503 SlowDown, 500, resets, stalls and a `200` whose body is
//! an `<Error>`: retried within the SDK's bound and recorded per file, cut
//! by the read timeout, never "uploaded" when the completion failed, and
//! the multipart upload of a failed file aborted (or, where the abort is
//! denied, left to the bucket's lifecycle rule, which the warning names).

use std::time::{Duration, Instant};

use super::{GENERAL, Published, RESEARCH, Rig, code, object, text};
use crate::common::cms::{dataset_csv, payments_csv, sha256_hex};
use crate::common::proxy::{Fault, Nth, Rule};

const BUCKET: &str = "raw-zone";
/// Just over the multipart threshold: parts of 16, 16 and 1 MiB.
const MULTIPART: usize = 33 * 1024 * 1024;
const UPLOAD_PART: &str = r"[?&]partNumber=";
const CREATE: &str = r"\?uploads";
const COMPLETE: &str = r"\?uploadId=";
const ABORT: &str = r"x-id=AbortMultipartUpload";

async fn multipart_rig(seed: u64) -> (Rig, Published) {
    let rig = Rig::start(BUCKET).await;
    let file = rig.publish(GENERAL, 2023, payments_csv(seed, MULTIPART));
    (rig, file)
}

/// A run of every published file (the multipart one is general-payments).
fn run(rig: &Rig, datasets: &[super::Ds]) -> std::process::Output {
    rig.cmd(&[2023], datasets, &format!("s3://{BUCKET}"))
        .output()
        .unwrap()
}

fn causes(audit: &serde_json::Value) -> Vec<String> {
    audit["s3"]["retry_causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

fn has(causes: &[String], needle: &str) -> bool {
    causes.iter().any(|c| c.contains(needle))
}

#[tokio::test(flavor = "multi_thread")]
async fn slowdown_500_resets_and_a_200_error_are_retried_and_audited() {
    let (rig, big) = multipart_rig(40).await;
    let small = rig.publish(RESEARCH, 2023, dataset_csv("Research", 41, 300_000));
    let p = &rig.s3_proxy;
    p.add_rule(Rule::new(
        Some("POST"),
        CREATE,
        Nth::Only(1),
        Fault::internal_error(),
    ));
    p.add_rule(Rule::new(
        Some("PUT"),
        UPLOAD_PART,
        Nth::Only(1),
        Fault::slow_down(),
    ));
    p.add_rule(Rule::new(
        Some("PUT"),
        UPLOAD_PART,
        Nth::Only(2),
        Fault::ResetRequestAfter(100_000),
    ));
    p.add_rule(Rule::new(
        Some("PUT"),
        UPLOAD_PART,
        Nth::Only(3),
        Fault::ResetResponseAfter(10),
    ));
    p.add_rule(Rule::new(
        Some("POST"),
        COMPLETE,
        Nth::Only(1),
        Fault::ok_with_error(),
    ));
    // The next completion succeeds in moto but its answer is lost; the
    // retry meets NoSuchUpload (moto would accept it again; S3 may not),
    // and the object is recognised as ours by its checksum.
    p.add_rule(Rule::new(
        Some("POST"),
        COMPLETE,
        Nth::Only(2),
        Fault::ResetResponseAfter(20),
    ));
    p.add_rule(Rule::new(
        Some("POST"),
        COMPLETE,
        Nth::Only(3),
        Fault::no_such_upload(),
    ));
    // The SDK percent-encodes `=` in the path.
    let small_put = format!(
        "{}(\\?x-id=PutObject)?$",
        regex::escape(&small.key.replace('=', "%3D"))
    );
    p.add_rule(Rule::new(
        Some("PUT"),
        &small_put,
        Nth::Only(1),
        Fault::ResetRequestAfter(5_000),
    ));
    p.add_rule(Rule::new(
        Some("PUT"),
        &small_put,
        Nth::Only(2),
        Fault::slow_down(),
    ));

    let o = run(&rig, &[GENERAL, RESEARCH]);
    assert_eq!(code(&o), 0, "{}", text(&o));

    // The proxy's own log: every fault was injected.
    for (kind, method, pattern) in [
        ("500_internal", "POST", CREATE),
        ("503_slow_down", "PUT", UPLOAD_PART),
        ("reset_request", "PUT", UPLOAD_PART),
        ("reset_response", "PUT", UPLOAD_PART),
        ("200_with_error", "POST", COMPLETE),
        ("reset_response", "POST", COMPLETE),
        ("reset_request", "PUT", "x-id=PutObject|RSRCH"),
        ("503_slow_down", "PUT", "x-id=PutObject|RSRCH"),
    ] {
        let re = regex::Regex::new(pattern).unwrap();
        assert!(
            p.injected(kind)
                .iter()
                .any(|e| e.method == method && re.is_match(&e.target)),
            "{kind} on {method} {pattern} was not injected: {:#?}",
            p.log()
        );
    }

    let completes: Vec<_> = p
        .log()
        .into_iter()
        .filter(|e| e.method == "POST" && e.target.contains("?uploadId="))
        .map(|e| (e.fault.map(|f| f.kind()), e.upstream_status))
        .collect();
    assert_eq!(
        completes,
        [
            (Some("200_with_error"), None),
            (Some("reset_response"), Some(200)),
            (Some("status"), None),
        ],
        "the third completion met NoSuchUpload, and no fourth was sent"
    );

    // Nothing lost: both objects hold exactly the source's bytes.
    let s3 = rig.s3().await;
    for f in [&big, &small] {
        let got = object(&s3, BUCKET, &f.key).await.expect("object exists");
        assert_eq!(sha256_hex(&got), sha256_hex(&f.body), "{}", f.key);
    }
    assert!(rig.open_uploads().await.is_empty(), "no upload left open");

    // The audit says what happened.
    let m = rig.manifests().pop().unwrap();
    let audits = rig.audits(&m);
    let audit_of = |f: &Published| {
        audits
            .iter()
            .find(|a| a["key"].as_str().unwrap().ends_with(&f.key))
            .unwrap()
            .clone()
    };
    let a = audit_of(&big);
    assert_eq!(a["upload"], "uploaded", "{a}");
    let c = causes(&a);
    for needle in [
        "CreateMultipartUpload: HTTP 500 InternalError",
        "UploadPart: HTTP 503 SlowDown",
        "UploadPart: connection failed or was cut",
        "CompleteMultipartUpload: HTTP 200 InternalError",
        "CompleteMultipartUpload: connection failed or was cut",
    ] {
        assert!(has(&c, needle), "{needle} missing from {c:?}");
    }
    assert!(a["s3"]["retries"].as_u64().unwrap() >= 5, "{a}");
    let a2 = audit_of(&small);
    assert_eq!(a2["upload"], "uploaded", "{a2}");
    let c2 = causes(&a2);
    assert!(has(&c2, "PutObject: HTTP 503 SlowDown"), "{c2:?}");
    assert!(
        has(&c2, "PutObject: connection failed or was cut"),
        "{c2:?}"
    );
    let total: u64 = audits
        .iter()
        .map(|a| a["s3"]["retries"].as_u64().unwrap())
        .sum();
    assert_eq!(
        m["s3_retries"].as_u64(),
        Some(total),
        "the manifest totals the retries"
    );
    assert!(total >= 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_upload_part_is_cut_by_the_read_timeout_and_retried() {
    let (mut rig, big) = multipart_rig(42).await;
    rig.read_timeout_secs = 3;
    let stall = Duration::from_secs(300);
    rig.s3_proxy.add_rule(Rule::new(
        Some("PUT"),
        UPLOAD_PART,
        Nth::Only(2),
        Fault::Stall(stall),
    ));
    let started = Instant::now();
    let o = run(&rig, &[GENERAL]);
    let took = started.elapsed();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        rig.s3_proxy.injected("stall").len(),
        1,
        "{:#?}",
        rig.s3_proxy.log()
    );
    assert!(
        took < Duration::from_secs(90),
        "the run waited for the stalled server ({took:?}) instead of cutting it after 3 s"
    );
    let m = rig.manifests().pop().unwrap();
    let a = &rig.audits(&m)[0];
    assert_eq!(a["upload"], "uploaded", "{a}");
    assert!(has(&causes(a), "UploadPart: timed out"), "{a}");
    let got = object(&rig.s3().await, BUCKET, &big.key).await.unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&big.body));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_completion_that_always_answers_200_with_an_error_fails_the_file_and_aborts() {
    let (rig, big) = multipart_rig(43).await;
    let p = &rig.s3_proxy;
    p.add_rule(Rule::new(
        Some("POST"),
        COMPLETE,
        Nth::Every,
        Fault::ok_with_error(),
    ));
    let o = run(&rig, &[GENERAL]);
    assert_eq!(code(&o), 1, "a failed file is a finding: {}", text(&o));
    let injected = p.injected("200_with_error");
    assert!(
        injected.len() >= 2,
        "the completion was retried within its bound: {injected:#?}"
    );
    assert!(
        injected.len() <= 10,
        "and the bound held: {}",
        injected.len()
    );
    let aborts: Vec<_> = p
        .log()
        .into_iter()
        .filter(|e| e.method == "DELETE" && e.target.contains("uploadId="))
        .collect();
    assert_eq!(aborts.len(), 1, "{aborts:#?}");
    assert_eq!(aborts[0].upstream_status, Some(204), "moto aborted it");

    let m = rig.manifests().pop().unwrap();
    let a = &rig.audits(&m)[0];
    assert_eq!(a["upload"], "failed", "never `uploaded`: {a}");
    let err = a["error"].as_str().unwrap();
    assert!(err.contains("InternalError"), "{err}");
    assert!(err.contains("its multipart upload was aborted"), "{err}");
    assert_eq!(m["files_uploaded"], 0);
    assert!(
        object(&rig.s3().await, BUCKET, &big.key).await.is_none(),
        "no object"
    );
    assert!(
        rig.open_uploads().await.is_empty(),
        "ListMultipartUploads shows none"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_abort_names_the_lifecycle_rule_that_cleans_up() {
    let (rig, big) = multipart_rig(44).await;
    let p = &rig.s3_proxy;
    p.add_rule(Rule::new(
        Some("PUT"),
        UPLOAD_PART,
        Nth::Every,
        Fault::internal_error(),
    ));
    p.add_rule(Rule::new(
        Some("DELETE"),
        ABORT,
        Nth::Every,
        Fault::access_denied(),
    ));
    let o = run(&rig, &[GENERAL]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        p.injected("status")
            .iter()
            .any(|e| e.method == "DELETE" && e.target.contains("uploadId=")),
        "the abort was denied by the proxy: {:#?}",
        p.log()
    );
    let part_faults = p.injected("500_internal").len();
    assert!(part_faults >= 2, "parts were retried: {part_faults}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(openpay::pipeline::store::ABORT_RULE),
        "the warning names the lifecycle rule: {stderr}"
    );
    let m = rig.manifests().pop().unwrap();
    let a = &rig.audits(&m)[0];
    assert_eq!(a["upload"], "failed");
    let err = a["error"].as_str().unwrap();
    assert!(err.contains("abort-incomplete-multipart-uploads"), "{err}");
    assert!(err.contains("s3:AbortMultipartUpload"), "{err}");
    // What the rule will clean up is there.
    assert_eq!(rig.open_uploads().await, vec![big.key.clone()]);
}
