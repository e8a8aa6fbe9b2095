//! The one place that builds AWS SDK clients.
//!
//! Loading the shared `SdkConfig` resolves credentials and region (the
//! standard chain: env, AWS_PROFILE, SSO, the instance role via IMDSv2) and
//! is the expensive part; the per-service clients are cheap views of it.
//! An endpoint override (`AWS_ENDPOINT_URL` or an explicit one) also turns
//! on path-style S3 addressing, which local S3 servers (moto, s3s) need.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The region used when neither config nor the AWS chain names one: the
/// stack's default region in terraform/variables.tf.
pub const DEFAULT_REGION: &str = "us-west-1";

/// How long a request may wait for its response (sending its body
/// included) when `[aws] read_timeout_secs` is not set. Without one, a
/// server that accepts a request and then sends nothing holds the run for
/// as long as it keeps the connection open. It must cover sending one
/// 16 MiB part while 8 share the link: 120 s is about 1.1 MB/s.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// What the user chose; everything else comes from the standard AWS chain.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    /// Overrides `AWS_ENDPOINT_URL` when set.
    pub endpoint_url: Option<String>,
    /// `None`: [`DEFAULT_READ_TIMEOUT`].
    pub read_timeout: Option<Duration>,
}

/// The shared SDK configuration and the clients built from it.
#[derive(Clone, Debug)]
pub struct AwsClients {
    sdk: SdkConfig,
    path_style: bool,
}

impl AwsClients {
    pub async fn load(settings: &AwsSettings) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(5))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(settings.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT))
                    .build(),
            );
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let env_endpoint = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|s| !s.is_empty());
        let endpoint = settings.endpoint_url.clone().or(env_endpoint);
        if let Some(url) = &endpoint {
            loader = loader.endpoint_url(url.clone());
        }
        let mut sdk = loader.load().await;
        if sdk.region().is_none() {
            sdk = sdk
                .into_builder()
                .region(Region::new(DEFAULT_REGION))
                .build();
        }
        Self {
            sdk,
            path_style: endpoint.is_some(),
        }
    }

    /// Wraps an already-loaded SDK config (tests, or callers that resolve
    /// credentials themselves). `path_style` must be true for local S3 servers.
    pub fn from_sdk(sdk: SdkConfig, path_style: bool) -> Self {
        Self { sdk, path_style }
    }

    pub fn region(&self) -> String {
        self.sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| DEFAULT_REGION.to_string())
    }

    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk)
            .force_path_style(self.path_style)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk)
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk)
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk)
    }
}
