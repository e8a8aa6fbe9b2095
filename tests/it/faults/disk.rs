//! A work dir that fills up mid-download (something else eats the space
//! after the preflight passed): one clear error naming the path and the
//! space needed, exit 3, nothing published, no torn record; once space is
//! freed the rerun resumes and completes.
//!
//! The work dir is a small tmpfs mounted in a private mount namespace
//! (`unshare -m`, needs root), so the test fills a real filesystem without
//! touching the host's. Everything that needs the mount runs in one shell
//! inside the namespace, which copies the states to look at out of it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{GENERAL, Rig, json, object};
use crate::common::cms::{payments_csv, sha256_hex};

const BUCKET: &str = "raw-zone";
const SIZE: usize = 6 << 20;

/// $1 work dir, $2 output dir, $3 the `.part` file, then the openpay
/// command line.
const SCRIPT: &str = r#"
set -u
W="$1"; OUT="$2"; PART="$3"; shift 3
# The preflight keeps a 256 MiB margin: room for it and the file, no more.
mount -t tmpfs -o size=272m openpay-test "$W" || exit 90
"$@" >"$OUT/run1.out" 2>"$OUT/run1.err" &
pid=$!
i=0
while [ "$(stat -c %s "$PART" 2>/dev/null || echo 0)" -lt 1048576 ]; do
  i=$((i+1))
  if [ $i -gt 1500 ]; then echo "the download never started" >"$OUT/fail"; kill $pid; exit 91; fi
  sleep 0.02
done
# Something else eats the space.
dd if=/dev/zero of="$W/filler" bs=64k >/dev/null 2>&1
stat -c %s "$W/filler" >"$OUT/filler_bytes"
df -B1 --output=avail "$W" | tail -1 >"$OUT/avail_after_fill"
wait $pid; echo $? >"$OUT/rc1"
snap() { mkdir -p "$OUT/$1"; (cd "$W" && tar cf - --exclude=./filler .) | (cd "$OUT/$1" && tar xf -); }
snap after1
# The test looks at the bucket, then lets the rerun go.
touch "$OUT/paused"
i=0
while [ ! -e "$OUT/go" ]; do
  i=$((i+1))
  if [ $i -gt 3000 ]; then echo "the test never said go" >"$OUT/fail"; exit 92; fi
  sleep 0.02
done
rm "$W/filler"
"$@" >"$OUT/run2.out" 2>"$OUT/run2.err"; echo $? >"$OUT/rc2"
snap after2
"#;

fn read(out: &Path, name: &str) -> String {
    std::fs::read_to_string(out.join(name))
        .unwrap_or_else(|e| panic!("{name} was not written by the namespace script: {e}"))
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_work_dir_that_fills_up_mid_download_stops_the_run_and_the_rerun_resumes() {
    let rig = Rig::start(BUCKET).await;
    let f = rig.publish(GENERAL, 2023, payments_csv(70, SIZE));
    rig.cms.throttle(Some(2 << 20));
    let work = rig.work();
    let out = rig.dir.path().join("out");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let rel_part = format!("{}.part", f.key);

    let inner = rig.cmd(&[2023], &[GENERAL], &format!("s3://{BUCKET}"));
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", SCRIPT, "sh"])
        .arg(&work)
        .arg(&out)
        .arg(work.join(&rel_part))
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(rig.dir.path());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let mut child = c.stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !out.join("paused").exists() {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "the namespace script stopped before the first run ended (unshare and mount need root): {}{}",
                String::from_utf8_lossy(&o.stderr),
                std::fs::read_to_string(out.join("fail")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing published by the first run: no object, no manifest.
    let s3 = rig.s3().await;
    let listed = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "{:?}", listed.contents());
    std::fs::write(out.join("go"), "").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "the namespace script failed: {}{}",
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(out.join("fail")).unwrap_or_default()
    );

    // The injector's log: the filler took the space.
    let filler: u64 = read(&out, "filler_bytes").parse().unwrap();
    assert!(filler > 200 << 20, "the filler ate {filler} bytes");
    assert_eq!(read(&out, "avail_after_fill"), "0", "the work dir was full");

    // First run: exit 3 and one clear line naming the path and the need.
    let err = read(&out, "run1.err");
    assert_eq!(read(&out, "rc1"), "3", "{err}");
    let last = err.lines().last().unwrap();
    eprintln!("first run: {last}");
    assert!(last.starts_with("error: no space left writing "), "{last}");
    assert!(last.contains(&rel_part), "names the file: {last}");
    assert!(
        last.contains("more bytes"),
        "says how much is needed: {last}"
    );
    assert!(last.contains("resumes"), "says what a rerun does: {last}");

    // No torn or premature record: the file is still a `.part`, its
    // state and every manifest parse.
    let after1 = out.join("after1");
    assert!(!after1.join(&f.key).exists(), "no final file");
    let part_len = std::fs::metadata(after1.join(&rel_part)).unwrap().len();
    assert!(part_len > 0 && part_len < SIZE as u64, "{part_len}");
    json(&std::fs::read(after1.join(format!("{}.part.json", f.key))).unwrap());
    for run in std::fs::read_dir(after1.join("metadata/runs")).unwrap() {
        let m = json(&std::fs::read(run.unwrap().path().join("manifest.json")).unwrap());
        assert_ne!(m["status"], "completed");
    }

    // Space freed: the rerun resumes and completes.
    assert_eq!(read(&out, "rc2"), "0", "{}", read(&out, "run2.err"));
    let got = object(&s3, BUCKET, &f.key).await.expect("uploaded");
    assert_eq!(sha256_hex(&got), sha256_hex(&f.body));
    let after2 = out.join("after2");
    let mut runs: Vec<_> = std::fs::read_dir(after2.join("metadata/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    let last_run = runs.last().unwrap();
    let m = json(&std::fs::read(last_run.join("manifest.json")).unwrap());
    assert_eq!(m["status"], "completed", "{m}");
    let audit = json(
        std::fs::read_to_string(last_run.join("file_audits.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .as_bytes(),
    );
    assert_eq!(audit["download"], "resumed", "{audit}");
    assert_eq!(audit["sha256"], sha256_hex(&f.body));
}
