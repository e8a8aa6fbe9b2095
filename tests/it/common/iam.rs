//! IAM fixtures in moto: roles with the repo's own runner policy, as
//! `openpay tf apply` leaves them.

use openpay::aws::AwsClients;

/// EC2 may assume the role (the instance profile's trust policy).
pub const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// terraform/policies/runner.json.tftpl rendered for `bucket`.
pub fn runner_policy(bucket: &str) -> String {
    std::fs::read_to_string(super::repo_root().join("terraform/policies/runner.json.tftpl"))
        .unwrap()
        .replace("${bucket}", bucket)
}

/// Creates a role with inline and attached managed policies.
pub async fn role(aws: &AwsClients, name: &str, inline: &[(&str, &str)], managed: &[(&str, &str)]) {
    let iam = aws.iam();
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(EC2_TRUST)
        .send()
        .await
        .unwrap();
    for (pname, doc) in inline {
        iam.put_role_policy()
            .role_name(name)
            .policy_name(*pname)
            .policy_document(*doc)
            .send()
            .await
            .unwrap();
    }
    for (pname, doc) in managed {
        let p = iam
            .create_policy()
            .policy_name(*pname)
            .policy_document(*doc)
            .send()
            .await
            .unwrap();
        iam.attach_role_policy()
            .role_name(name)
            .policy_arn(p.policy().unwrap().arn().unwrap())
            .send()
            .await
            .unwrap();
    }
}
