//! Evaluator cases taken from the AWS IAM documentation. Each group names
//! the page its examples come from:
//! - "Policy evaluation logic":
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
//! - "The difference between explicit and implicit denies":
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_AccessPolicyLanguage_Interplay.html
//! - "IAM JSON policy elements: Action / NotAction / Resource / NotResource":
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notresource.html
//! - "IAM JSON policy elements: Condition operators":
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html

use super::normalize::{Atom, atom_covers, atoms, canonical_condition};
use super::*;

fn doc(json: &str) -> PolicyDocument {
    PolicyDocument::parse(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn eval(policies: &[&str], action: &str, resource: &str) -> Decision {
    eval_req(policies, &Request::new(action, resource))
}

fn eval_req(policies: &[&str], req: &Request) -> Decision {
    let named: Vec<(String, PolicyDocument)> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("p{i}"), doc(p)))
        .collect();
    evaluate(&named, req).decision
}

const BUCKET: &str = "arn:aws:s3:::amzn-s3-demo-bucket";
const OBJ: &str = "arn:aws:s3:::amzn-s3-demo-bucket/raw/file.csv";

// ---- "Policy evaluation logic" / explicit vs implicit denies ----

#[test]
fn no_statement_applies_is_implicit_deny() {
    let p = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    assert_eq!(eval(&[p], "s3:PutObject", OBJ), Decision::ImplicitDeny);
}

#[test]
fn empty_policy_set_is_implicit_deny() {
    assert_eq!(eval(&[], "s3:GetObject", OBJ), Decision::ImplicitDeny);
}

#[test]
fn allow_applies() {
    let p = r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#;
    assert_eq!(eval(&[p], "s3:GetObject", OBJ), Decision::Allowed);
}

#[test]
fn deny_in_same_policy_beats_allow() {
    let p = r#"{"Statement":[
        {"Effect":"Allow","Action":"s3:*","Resource":"*"},
        {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"}]}"#;
    assert_eq!(eval(&[p], "s3:DeleteObject", OBJ), Decision::ExplicitDeny);
    assert_eq!(eval(&[p], "s3:GetObject", OBJ), Decision::Allowed);
}

#[test]
fn deny_in_another_policy_beats_allow() {
    // The docs' example: another policy granting the action cannot undo a Deny.
    let allow = r#"{"Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;
    let deny = r#"{"Statement":[{"Sid":"DenyReports","Effect":"Deny","Action":"iam:*Report","Resource":"*"}]}"#;
    assert_eq!(
        eval(&[allow, deny], "iam:GenerateCredentialReport", "*"),
        Decision::ExplicitDeny
    );
}

#[test]
fn get_list_allowed_other_iam_implicitly_denied() {
    // "AllowGetList" from the explicit/implicit denies page.
    let p = r#"{"Statement":[
        {"Sid":"AllowGetList","Effect":"Allow","Action":["iam:Get*","iam:List*"],"Resource":"*"},
        {"Sid":"DenyReports","Effect":"Deny","Action":"iam:*Report","Resource":"*"}]}"#;
    assert_eq!(eval(&[p], "iam:GetRole", "*"), Decision::Allowed);
    assert_eq!(eval(&[p], "iam:ListRoles", "*"), Decision::Allowed);
    assert_eq!(eval(&[p], "iam:CreatePolicy", "*"), Decision::ImplicitDeny);
    assert_eq!(
        eval(&[p], "iam:GetOrganizationsAccessReport", "*"),
        Decision::ExplicitDeny
    );
}

#[test]
fn matched_statements_name_the_deciding_deny() {
    let p = doc(
        r#"{"Statement":[{"Sid":"A","Effect":"Allow","Action":"s3:*","Resource":"*"},
        {"Sid":"D","Effect":"Deny","Action":"s3:PutObject","Resource":"*"}]}"#,
    );
    let ev = evaluate(
        &[("inline:runner".into(), p)],
        &Request::new("s3:PutObject", OBJ),
    );
    assert_eq!(ev.decision, Decision::ExplicitDeny);
    assert_eq!(
        ev.matched,
        vec![MatchedStatement {
            policy: "inline:runner".into(),
            sid: Some("D".into()),
            index: 1,
            effect: Effect::Deny
        }]
    );
}

#[test]
fn statement_order_does_not_matter() {
    let a = r#"{"Statement":[{"Effect":"Deny","Action":"s3:PutObject","Resource":"*"},{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let b = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:PutObject","Resource":"*"}]}"#;
    assert_eq!(eval(&[a], "s3:PutObject", OBJ), Decision::ExplicitDeny);
    assert_eq!(eval(&[b], "s3:PutObject", OBJ), Decision::ExplicitDeny);
}

// ---- Action element: wildcards and case ----

#[test]
fn action_prefix_wildcard_s3_put() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:Put*","Resource":"*"}]}"#;
    assert_eq!(eval(&[p], "s3:PutObject", OBJ), Decision::Allowed);
    assert_eq!(eval(&[p], "s3:PutBucketPolicy", BUCKET), Decision::Allowed);
    assert_eq!(eval(&[p], "s3:GetObject", OBJ), Decision::ImplicitDeny);
}

#[test]
fn action_names_are_case_insensitive() {
    // "Action": "iam:listaccesskeys" is equivalent to "IAM:ListAccessKeys".
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"IAM:listaccesskeys","Resource":"*"}]}"#;
    assert_eq!(eval(&[p], "iam:ListAccessKeys", "*"), Decision::Allowed);
}

#[test]
fn action_question_mark_is_one_character() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:?etObject","Resource":"*"}]}"#;
    assert_eq!(eval(&[p], "s3:GetObject", OBJ), Decision::Allowed);
    assert_eq!(eval(&[p], "s3:SetObject", OBJ), Decision::Allowed);
    assert_eq!(eval(&[p], "s3:ResetObject", OBJ), Decision::ImplicitDeny);
}

#[test]
fn action_star_matches_every_service() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    assert_eq!(eval(&[p], "ec2:RunInstances", "*"), Decision::Allowed);
    assert_eq!(eval(&[p], "iam:CreateUser", "*"), Decision::Allowed);
}

#[test]
fn action_wildcard_does_not_cross_service() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    assert_eq!(
        eval(&[p], "s3express:CreateSession", "*"),
        Decision::ImplicitDeny
    );
}

// ---- NotAction ----

#[test]
fn allow_with_notaction_allows_everything_else() {
    // NotAction page: allow all actions except IAM.
    let p = r#"{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#;
    assert_eq!(eval(&[p], "s3:GetObject", OBJ), Decision::Allowed);
    assert_eq!(eval(&[p], "iam:CreateUser", "*"), Decision::ImplicitDeny);
}

#[test]
fn deny_with_notaction_denies_everything_else() {
    // NotAction page: deny everything except the listed actions (e.g. without MFA).
    let allow = r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let deny =
        r#"{"Statement":[{"Effect":"Deny","NotAction":["iam:Get*","iam:List*"],"Resource":"*"}]}"#;
    assert_eq!(eval(&[allow, deny], "iam:GetUser", "*"), Decision::Allowed);
    assert_eq!(
        eval(&[allow, deny], "s3:GetObject", OBJ),
        Decision::ExplicitDeny
    );
}

// ---- Resource element: ARN wildcards and case ----

#[test]
fn bucket_star_covers_bucket_and_its_objects() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::amzn-s3-demo-bucket*"}]}"#;
    assert_eq!(eval(&[p], "s3:ListBucket", BUCKET), Decision::Allowed);
    assert_eq!(eval(&[p], "s3:GetObject", OBJ), Decision::Allowed);
    // ... and other buckets whose names start the same way.
    assert_eq!(
        eval(
            &[p],
            "s3:ListBucket",
            "arn:aws:s3:::amzn-s3-demo-bucket-logs"
        ),
        Decision::Allowed
    );
}

#[test]
fn bucket_slash_star_covers_objects_not_the_bucket() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::amzn-s3-demo-bucket/*"}]}"#;
    assert_eq!(eval(&[p], "s3:GetObject", OBJ), Decision::Allowed);
    assert_eq!(eval(&[p], "s3:ListBucket", BUCKET), Decision::ImplicitDeny);
    assert_eq!(
        eval(
            &[p],
            "s3:GetObject",
            "arn:aws:s3:::amzn-s3-demo-bucket-logs/x"
        ),
        Decision::ImplicitDeny
    );
}

#[test]
fn resource_arns_are_case_sensitive() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::amzn-s3-demo-bucket/Raw/*"}]}"#;
    assert_eq!(eval(&[p], "s3:GetObject", OBJ), Decision::ImplicitDeny);
    assert_eq!(
        eval(
            &[p],
            "s3:GetObject",
            "arn:aws:s3:::amzn-s3-demo-bucket/Raw/a"
        ),
        Decision::Allowed
    );
}

#[test]
fn resource_question_mark() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket-?/*"}]}"#;
    assert_eq!(
        eval(&[p], "s3:GetObject", "arn:aws:s3:::bucket-a/k"),
        Decision::Allowed
    );
    assert_eq!(
        eval(&[p], "s3:GetObject", "arn:aws:s3:::bucket-ab/k"),
        Decision::ImplicitDeny
    );
}

#[test]
fn arn_segment_wildcards_stay_in_their_segment() {
    // Resource page: wildcards within ARN segments (region, account).
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::*:user/Bob"}]}"#;
    assert_eq!(
        eval(&[p], "iam:GetUser", "arn:aws:iam::123456789012:user/Bob"),
        Decision::Allowed
    );
    assert_eq!(
        eval(&[p], "iam:GetUser", "arn:aws:iam::123456789012:user/Alice"),
        Decision::ImplicitDeny
    );
    let p =
        r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:*:us-east-1:*:*"}]}"#;
    assert_eq!(
        eval(
            &[p],
            "ec2:RunInstances",
            "arn:aws:ec2:us-west-1:1:instance/i-1"
        ),
        Decision::ImplicitDeny
    );
}

#[test]
fn iam_path_wildcard() {
    // Resource page: "arn:aws:iam::account-ID-without-hyphens:user/division_abc/subdivision_xyz/*".
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"arn:aws:iam::123456789012:user/division_abc/*"}]}"#;
    assert_eq!(
        eval(
            &[p],
            "iam:GetUser",
            "arn:aws:iam::123456789012:user/division_abc/subdivision_xyz/Bob"
        ),
        Decision::Allowed
    );
    assert_eq!(
        eval(&[p], "iam:GetUser", "arn:aws:iam::123456789012:user/Bob"),
        Decision::ImplicitDeny
    );
}

// ---- NotResource ----

#[test]
fn deny_with_notresource_denies_all_other_resources() {
    // NotResource page: deny everything outside one bucket.
    let allow = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let deny = r#"{"Statement":[{"Effect":"Deny","Action":"s3:*","NotResource":["arn:aws:s3:::amzn-s3-demo-bucket","arn:aws:s3:::amzn-s3-demo-bucket/*"]}]}"#;
    assert_eq!(eval(&[allow, deny], "s3:GetObject", OBJ), Decision::Allowed);
    assert_eq!(
        eval(
            &[allow, deny],
            "s3:GetObject",
            "arn:aws:s3:::other-bucket/x"
        ),
        Decision::ExplicitDeny
    );
}

#[test]
fn allow_with_notresource_allows_all_but_listed() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","NotResource":"arn:aws:s3:::secret/*"}]}"#;
    assert_eq!(eval(&[p], "s3:GetObject", OBJ), Decision::Allowed);
    assert_eq!(
        eval(&[p], "s3:GetObject", "arn:aws:s3:::secret/x"),
        Decision::ImplicitDeny
    );
}

#[test]
fn notaction_and_notresource_together() {
    let p = r#"{"Statement":[{"Effect":"Deny","NotAction":"s3:GetObject","NotResource":"arn:aws:s3:::open/*"},
        {"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    assert_eq!(eval(&[p], "s3:PutObject", OBJ), Decision::ExplicitDeny);
    assert_eq!(eval(&[p], "s3:GetObject", OBJ), Decision::Allowed);
    assert_eq!(
        eval(&[p], "s3:PutObject", "arn:aws:s3:::open/x"),
        Decision::Allowed
    );
}

// ---- Conditions ----

#[test]
fn condition_missing_key_is_inconclusive_with_reason() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*",
        "Condition":{"StringEquals":{"s3:x-amz-server-side-encryption":"aws:kms"}}}]}"#;
    match eval(&[p], "s3:PutObject", OBJ) {
        Decision::Inconclusive { reason } => {
            assert!(
                reason.contains("s3:x-amz-server-side-encryption"),
                "{reason}"
            )
        }
        other => panic!("expected inconclusive, got {other:?}"),
    }
}

#[test]
fn condition_string_equals_decided_from_context() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*",
        "Condition":{"StringEquals":{"s3:x-amz-server-side-encryption":["aws:kms","AES256"]}}}]}"#;
    let yes = Request::new("s3:PutObject", OBJ)
        .with_context("s3:x-amz-server-side-encryption", &["AES256"]);
    let no = Request::new("s3:PutObject", OBJ)
        .with_context("s3:x-amz-server-side-encryption", &["none"]);
    assert_eq!(eval_req(&[p], &yes), Decision::Allowed);
    assert_eq!(eval_req(&[p], &no), Decision::ImplicitDeny);
}

#[test]
fn condition_bool_secure_transport_deny() {
    // Deny when aws:SecureTransport is false (the common TLS-only policy).
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},
        {"Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
    let tls = Request::new("s3:GetObject", OBJ).with_context("aws:SecureTransport", &["true"]);
    let plain = Request::new("s3:GetObject", OBJ).with_context("aws:securetransport", &["false"]);
    assert_eq!(eval_req(&[p], &tls), Decision::Allowed);
    assert_eq!(eval_req(&[p], &plain), Decision::ExplicitDeny);
    // Unknown context: the Deny might apply, so the answer is inconclusive.
    assert!(matches!(
        eval(&[p], "s3:GetObject", OBJ),
        Decision::Inconclusive { .. }
    ));
}

#[test]
fn condition_string_like_and_not_equals() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*",
        "Condition":{"StringLike":{"s3:prefix":["raw/*","metadata/*"]},"StringNotEquals":{"s3:delimiter":"|"}}}]}"#;
    let ok = Request::new("s3:ListBucket", BUCKET)
        .with_context("s3:prefix", &["raw/2024/"])
        .with_context("s3:delimiter", &["/"]);
    let bad_prefix = Request::new("s3:ListBucket", BUCKET)
        .with_context("s3:prefix", &["home/"])
        .with_context("s3:delimiter", &["/"]);
    let bad_delim = Request::new("s3:ListBucket", BUCKET)
        .with_context("s3:prefix", &["raw/"])
        .with_context("s3:delimiter", &["|"]);
    assert_eq!(eval_req(&[p], &ok), Decision::Allowed);
    assert_eq!(eval_req(&[p], &bad_prefix), Decision::ImplicitDeny);
    assert_eq!(eval_req(&[p], &bad_delim), Decision::ImplicitDeny);
}

#[test]
fn condition_if_exists_and_null() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"ec2:RunInstances","Resource":"*",
        "Condition":{"StringEqualsIfExists":{"ec2:InstanceType":"t3.micro"},"Null":{"aws:TokenIssueTime":"true"}}}]}"#;
    // Key absent: IfExists holds; Null true holds because the key is absent.
    assert_eq!(eval(&[p], "ec2:RunInstances", "*"), Decision::Allowed);
    let temp_creds = Request::new("ec2:RunInstances", "*")
        .with_context("aws:TokenIssueTime", &["2024-01-01T00:00:00Z"]);
    assert_eq!(eval_req(&[p], &temp_creds), Decision::ImplicitDeny);
    let big =
        Request::new("ec2:RunInstances", "*").with_context("ec2:InstanceType", &["m5.24xlarge"]);
    assert_eq!(eval_req(&[p], &big), Decision::ImplicitDeny);
}

#[test]
fn condition_set_operators() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"dynamodb:PutItem","Resource":"*",
        "Condition":{"ForAllValues:StringEquals":{"dynamodb:Attributes":["ID","Message"]}}}]}"#;
    let ok = Request::new("dynamodb:PutItem", "*")
        .with_context("dynamodb:Attributes", &["ID", "Message"]);
    let extra = Request::new("dynamodb:PutItem", "*")
        .with_context("dynamodb:Attributes", &["ID", "Secret"]);
    assert_eq!(eval_req(&[p], &ok), Decision::Allowed);
    assert_eq!(eval_req(&[p], &extra), Decision::ImplicitDeny);
    let any = r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
        "Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["team"]}}}]}"#;
    let tagged = Request::new("s3:GetObject", OBJ).with_context("aws:TagKeys", &["env", "team"]);
    assert_eq!(eval_req(&[any], &tagged), Decision::Allowed);
    assert_eq!(eval(&[any], "s3:GetObject", OBJ), Decision::ImplicitDeny);
}

#[test]
fn condition_ip_numeric_date_arn() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{
        "IpAddress":{"aws:SourceIp":"197.210.77.0/24"},
        "NumericLessThanEquals":{"s3:max-keys":"10"},
        "DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},
        "ArnLike":{"aws:SourceArn":"arn:aws:sns:*:123456789012:*"}}}]}"#;
    let base = || {
        Request::new("s3:GetObject", OBJ)
            .with_context("aws:SourceIp", &["197.210.77.9"])
            .with_context("s3:max-keys", &["5"])
            .with_context("aws:CurrentTime", &["2026-11-25T20:00:00Z"])
            .with_context(
                "aws:SourceArn",
                &["arn:aws:sns:us-west-1:123456789012:topic"],
            )
    };
    assert_eq!(eval_req(&[p], &base()), Decision::Allowed);
    let outside = base().with_context("aws:SourceIp", &["10.0.0.1"]);
    assert_eq!(eval_req(&[p], &outside), Decision::ImplicitDeny);
    let many = base().with_context("s3:max-keys", &["50"]);
    assert_eq!(eval_req(&[p], &many), Decision::ImplicitDeny);
    let late = base().with_context("aws:CurrentTime", &["2031-01-01T00:00:00Z"]);
    assert_eq!(eval_req(&[p], &late), Decision::ImplicitDeny);
    let other_acct =
        base().with_context("aws:SourceArn", &["arn:aws:sns:us-west-1:999999999999:t"]);
    assert_eq!(eval_req(&[p], &other_acct), Decision::ImplicitDeny);
}

#[test]
fn unknown_operator_is_inconclusive() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
        "Condition":{"StringMatchesRegex":{"aws:username":"^a"}}}]}"#;
    let req = Request::new("s3:GetObject", OBJ).with_context("aws:username", &["alice"]);
    match eval_req(&[p], &req) {
        Decision::Inconclusive { reason } => {
            assert!(reason.contains("StringMatchesRegex"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn false_condition_on_one_key_decides_even_if_another_is_unknown() {
    let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
        "Condition":{"StringEquals":{"aws:username":"bob","aws:PrincipalTag/team":"data"}}}]}"#;
    let req = Request::new("s3:GetObject", OBJ).with_context("aws:username", &["alice"]);
    assert_eq!(eval_req(&[p], &req), Decision::ImplicitDeny);
}

// ---- Parsing ----

#[test]
fn parse_url_encoded_document() {
    let enc = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D";
    let d = PolicyDocument::parse_maybe_url_encoded(enc).unwrap();
    assert_eq!(d.version.as_deref(), Some("2012-10-17"));
    assert_eq!(
        d.statements[0].action,
        ActionMatch::Action(vec!["s3:GetObject".into()])
    );
    // Plain JSON passes through unchanged.
    let plain = PolicyDocument::parse_maybe_url_encoded(
        r#"{"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}"#,
    )
    .unwrap();
    assert_eq!(plain.statements[0].effect, Effect::Deny);
}

#[test]
fn parse_errors_name_the_statement_and_element() {
    let e = PolicyDocument::parse(
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","NotAction":"iam:*","Resource":"*"}]}"#,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("statement 0") && e.to_string().contains("NotAction"),
        "{e}"
    );
    let e = PolicyDocument::parse(
        r#"{"Statement":[{"Effect":"Permit","Action":"s3:*","Resource":"*"}]}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("Permit"), "{e}");
    let e =
        PolicyDocument::parse(r#"{"Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#).unwrap_err();
    assert!(e.to_string().contains("Resource"), "{e}");
    assert!(PolicyDocument::parse("not json").is_err());
}

#[test]
fn document_round_trips_through_to_value() {
    let d = doc(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"S","Effect":"Allow","NotAction":"iam:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#,
    );
    let again = PolicyDocument::from_value(&d.to_value()).unwrap();
    assert_eq!(d, again);
}

// ---- Normal form (drift) ----

#[test]
fn atoms_ignore_order_case_split_and_duplicates() {
    let a = doc(
        r#"{"Statement":[{"Sid":"X","Effect":"Allow","Action":["s3:PutObject","s3:GetObject","s3:GetObject"],"Resource":"arn:aws:s3:::b/*"}]}"#,
    );
    let b = doc(
        r#"{"Statement":[{"Effect":"Allow","Resource":["arn:aws:s3:::b/*"],"Action":"S3:getobject"},
        {"Action":"s3:PutObject","Effect":"Allow","Resource":"arn:aws:s3:::b/*"}]}"#,
    );
    let set = |d: &PolicyDocument| {
        let mut v: Vec<Atom> = atoms("p", d).into_iter().map(|a| a.atom).collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(set(&a), set(&b));
}

#[test]
fn canonical_condition_ignores_key_and_value_order() {
    let a: serde_json::Value =
        serde_json::from_str(r#"{"StringEquals":{"a":["2","1"],"b":"x"},"Bool":{"c":"true"}}"#)
            .unwrap();
    let b: serde_json::Value = serde_json::from_str(
        r#"{"Bool":{"c":["true"]},"StringEquals":{"b":["x"],"a":["1","2","1"]}}"#,
    )
    .unwrap();
    assert_eq!(canonical_condition(&a), canonical_condition(&b));
    let c: serde_json::Value = serde_json::from_str(r#"{"Bool":{"c":"false"}}"#).unwrap();
    assert_ne!(canonical_condition(&a), canonical_condition(&c));
}

#[test]
fn covers_is_sound_for_wildcards() {
    assert!(glob_covers("s3:*", "s3:Put*", true));
    assert!(!glob_covers("s3:Put*", "s3:*", true));
    // `?` cannot stand for a `*` (which may be many characters).
    assert!(!glob_covers("a?c", "a*c", false));
    assert!(glob_covers("a*c", "a?c", false));
    let wide = &atoms(
        "p",
        &doc(r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b*"}]}"#),
    )[0]
    .atom;
    let narrow = &atoms("p", &doc(r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/raw/*"}]}"#))[0].atom;
    assert!(atom_covers(wide, narrow));
    assert!(!atom_covers(narrow, wide));
}
