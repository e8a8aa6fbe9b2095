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
        // A free port is free only until someone binds it: tests run in
        // parallel processes, and another test's moto may take the port
        // first. Then a connect would reach *that* server and two tests
        // would share one account. So readiness is this child's own
        // " * Running on http://127.0.0.1:PORT" line, and a child that
        // exits instead (the port was taken) is retried on another port.
        for _ in 0..5 {
            if let Some(server) = Self::try_start(env) {
                return server;
            }
        }
        panic!("moto_server lost the race for a free port 5 times in a row");
    }

    fn try_start(env: &[(&str, &str)]) -> Option<Self> {
        use std::io::BufRead;
        let bin = super::required_env("OPENPAY_TEST_MOTO_SERVER");
        let port = super::free_port();
        let mut cmd = Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server at {bin}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<bool>();
        let banner = format!("Running on http://127.0.0.1:{port}");
        // Keeps draining stderr (moto logs every request there) so the
        // server never blocks on a full pipe; says whether it bound.
        std::thread::spawn(move || {
            let mut told = false;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !told && line.contains(&banner) {
                    told = tx.send(true).is_ok();
                }
            }
            if !told {
                let _ = tx.send(false);
            }
        });
        let mut server = MotoServer { child, port };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(true) => {}
            Ok(false) => return None, // exited: the port was taken
            Err(_) => panic!("moto_server did not report listening on {port} within 30s"),
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server said it listens on {port} but does not accept"
            );
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "moto_server on {port} exited"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
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
