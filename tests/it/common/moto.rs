//! moto_server (S3, IAM, STS, EC2) as a real HTTP server, one per test so
//! state never leaks between tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MotoServer {
    child: Child,
    pub port: u16,
}

impl MotoServer {
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// `env` is passed to the server, e.g. `INITIAL_NO_AUTH_ACTION_COUNT`
    /// to make moto enforce IAM after that many requests.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let bin = super::required_env("OPENPAY_TEST_MOTO_SERVER");
        let port = super::free_port();
        let mut cmd = Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server at {bin}: {e}"));
        let server = MotoServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port} within 30s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment for a process (openpay, terraform) that talks to this
    /// server with throwaway credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.url()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), "us-west-1".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }

    /// SDK clients for assertions, built the same way openpay builds them.
    pub async fn clients(&self) -> openpay::aws::AwsClients {
        self.clients_as("testing", "testing").await
    }

    /// SDK clients holding an IAM user's keys (once moto enforces IAM,
    /// the setup credentials of [`clients`](Self::clients) are rejected).
    pub async fn clients_as(&self, id: &str, secret: &str) -> openpay::aws::AwsClients {
        let creds = aws_sdk_s3::config::Credentials::new(id, secret, None, None, "test");
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-west-1"))
            .endpoint_url(self.url())
            .credentials_provider(creds)
            .load()
            .await;
        openpay::aws::AwsClients::from_sdk(sdk, true)
    }
}

/// Creates a bucket in the tests' region (moto wants the constraint).
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// Turns on versioning, so a test can count the versions of each object
/// (an object PUT twice has two).
pub async fn enable_versioning(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
