//! Nothing lost under faults (issue 14): S3 answering 503/500, resets,
//! stalls and `200`-with-error through the fault proxy, `kill -9` at random
//! instants, a work dir that fills up, and a soak of many files with a share
//! of all requests faulted. Every test proves from the injector's own log
//! that the fault it survives happened.

mod chaos;
mod disk;
mod proxy;
mod s3;
mod soak;

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::common::cms::CmsServer;
use crate::common::moto::MotoServer;
use crate::common::openpay;
use crate::common::proxy::FaultProxy;

/// The instance role `crate::pipeline::create_bucket` creates.
const ROLE: &str = "openpay-runner";

/// A dataset of the catalog: its title word, its `--dataset` and the
/// file-name tag CMS uses.
#[derive(Debug, Clone, Copy)]
pub struct Ds {
    pub word: &'static str,
    pub slug: &'static str,
    pub tag: &'static str,
}

pub const GENERAL: Ds = Ds {
    word: "General",
    slug: "general-payments",
    tag: "GNRL",
};
pub const RESEARCH: Ds = Ds {
    word: "Research",
    slug: "research-payments",
    tag: "RSRCH",
};

/// One published file.
#[derive(Debug, Clone)]
pub struct Published {
    /// The object key under the destination's prefix.
    pub key: String,
    pub body: Vec<u8>,
}

/// moto and the CMS fixture, each behind a fault proxy; a bucket with the
/// runner role; a temp dir for the work dir.
pub struct Rig {
    pub moto: MotoServer,
    pub s3_proxy: FaultProxy,
    pub cms: CmsServer,
    pub cms_proxy: FaultProxy,
    pub dir: tempfile::TempDir,
    pub bucket: String,
    /// `OPENPAY_AWS_READ_TIMEOUT_SECS` for the runs.
    pub read_timeout_secs: u64,
}

impl Rig {
    pub async fn start(bucket: &str) -> Rig {
        let moto = MotoServer::start();
        crate::pipeline::create_bucket(&moto, bucket).await;
        let s3_proxy = FaultProxy::start(([127, 0, 0, 1], moto.port).into());
        let cms = CmsServer::start();
        let cms_proxy = FaultProxy::start(cms.addr);
        Rig {
            moto,
            s3_proxy,
            cms,
            cms_proxy,
            dir: tempfile::tempdir().unwrap(),
            bucket: bucket.to_string(),
            read_timeout_secs: 5,
        }
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file of `ds` for `year`, as CMS names it.
    pub fn name(ds: Ds, year: i32, round: u32) -> String {
        format!("OP_DTL_{}_PGYR{year}_P01302025_R{round}.csv", ds.tag)
    }

    pub fn key(ds: Ds, year: i32, name: &str) -> String {
        format!("raw/dataset={}/year={year}/{name}", ds.slug)
    }

    /// Publishes `body` as the file of `ds` for `year`, downloaded
    /// through the CMS proxy.
    pub fn publish(&self, ds: Ds, year: i32, body: Vec<u8>) -> Published {
        let name = Self::name(ds, year, 0);
        self.cms
            .publish_at(&self.cms_proxy.url(), year, ds.word, &name, body.clone());
        Published {
            key: Self::key(ds, year, &name),
            body,
        }
    }

    /// `openpay run` for these years and datasets into `dest`, S3 through
    /// the S3 proxy, the source through the CMS proxy.
    pub fn cmd(&self, years: &[i32], datasets: &[Ds], dest: &str) -> Command {
        let mut c = openpay();
        c.current_dir(self.dir.path());
        c.args(["run", "--source-url", &self.cms_proxy.url(), "--dest", dest]);
        c.arg("--work-dir").arg(self.work());
        for y in years {
            c.args(["--year", &y.to_string()]);
        }
        for d in datasets {
            c.args(["--dataset", d.slug]);
        }
        for (k, v) in self.moto.env() {
            c.env(k, v);
        }
        c.env("AWS_ENDPOINT_URL", self.s3_proxy.url());
        c.env("OPENPAY_AWS_ROLE_NAME", ROLE);
        c.env(
            "OPENPAY_AWS_READ_TIMEOUT_SECS",
            self.read_timeout_secs.to_string(),
        );
        c
    }

    /// All run manifests in the work dir, oldest first.
    pub fn manifests(&self) -> Vec<serde_json::Value> {
        crate::common::run_manifests(&self.work())
    }

    pub fn audits(&self, manifest: &serde_json::Value) -> Vec<serde_json::Value> {
        let dir = self.work().join(format!(
            "metadata/runs/run_id={}",
            manifest["run_id"].as_str().unwrap()
        ));
        jsonl(&std::fs::read(dir.join("file_audits.jsonl")).unwrap())
    }

    /// A client straight to moto, for assertions.
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        self.moto.clients().await.s3()
    }

    /// The multipart uploads still open in the bucket.
    pub async fn open_uploads(&self) -> Vec<String> {
        self.s3()
            .await
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap()
            .uploads()
            .iter()
            .map(|u| u.key().unwrap_or_default().to_string())
            .collect()
    }
}

/// The whole content of an object, or `None` when it does not exist.
pub async fn object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = s3.get_object().bucket(bucket).key(key).send().await.ok()?;
    Some(out.body.collect().await.unwrap().into_bytes().to_vec())
}

pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "not valid JSON ({e}): {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        )
    })
}

pub fn jsonl(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(|l| json(l.as_bytes()))
        .collect()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A seed from `var` when set (to replay a failure), else a fresh one;
/// printed either way.
pub fn seed(var: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("seed {seed} (replay with {var}={seed})");
    seed
}
