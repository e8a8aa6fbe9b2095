//! Rendering `terraform/policies/*.tftpl` the way terraform's
//! `templatefile()` does for the subset these policy files use:
//! `${name}` interpolations of plain variables and the `$${` escape.
//!
//! Anything richer (`%{ for }` directives, function calls) is refused with
//! the position, so drift never compares against a half-rendered policy.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error(
        "template {file} uses ${{{name}}} but no value was given; pass --var {name}=VALUE{hint}"
    )]
    Missing {
        file: String,
        name: String,
        hint: String,
    },
    #[error("template {file}: {message}")]
    Unsupported { file: String, message: String },
}

/// Renders `text` (read from `file`, named in errors) with `vars`.
pub fn render(
    file: &str,
    text: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, TemplateError> {
    let unsupported = |message: String| TemplateError::Unsupported {
        file: file.to_string(),
        message,
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(['$', '%']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%%{") {
            out.push_str("%{");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| unsupported("unterminated ${ interpolation".into()))?;
            let name = after[..end].trim();
            let simple = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !simple {
                return Err(unsupported(format!(
                    "`${{{name}}}` is an expression; only plain variables are supported"
                )));
            }
            let value = vars.get(name).ok_or_else(|| TemplateError::Missing {
                file: file.to_string(),
                name: name.to_string(),
                hint: if name == "bucket" {
                    " or set [aws] bucket in openpay.toml (or run `openpay tf apply` to write .openpay/outputs.json)".into()
                } else {
                    String::new()
                },
            })?;
            out.push_str(value);
            rest = &after[end + 1..];
        } else if tail.starts_with("%{") {
            return Err(unsupported(
                "template directives (%{ ... }) are not supported".into(),
            ));
        } else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses `--var KEY=VALUE` flags.
pub fn parse_vars(flags: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for flag in flags {
        let (k, v) = flag
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| {
                format!("--var `{flag}` is not KEY=VALUE, e.g. --var bucket=my-bucket")
            })?;
        vars.insert(k.trim().to_string(), v.to_string());
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitutes_and_escapes() {
        let out = render(
            "t",
            r#"{"r":"arn:aws:s3:::${bucket}/*","lit":"$${keep}","pct":"100%"}"#,
            &vars(&[("bucket", "b1")]),
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"r":"arn:aws:s3:::b1/*","lit":"${keep}","pct":"100%"}"#
        );
    }

    #[test]
    fn missing_variable_names_it_and_the_flag() {
        let e = render("runner.json.tftpl", "${bucket}", &vars(&[])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--var bucket=VALUE"), "{msg}");
        assert!(msg.contains("runner.json.tftpl"), "{msg}");
    }

    #[test]
    fn expressions_and_directives_are_refused() {
        assert!(render("t", "${upper(bucket)}", &vars(&[("bucket", "b")])).is_err());
        assert!(render("t", "%{ for x in y }", &vars(&[])).is_err());
        assert!(render("t", "${bucket", &vars(&[])).is_err());
    }

    #[test]
    fn repo_template_renders_to_a_valid_policy() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/terraform/policies/runner.json.tftpl"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let out = render("runner.json.tftpl", &text, &vars(&[("bucket", "b1")])).unwrap();
        let doc = crate::infra::policy::PolicyDocument::parse(&out).unwrap();
        assert_eq!(doc.statements.len(), 2);
        assert!(out.contains("arn:aws:s3:::b1/raw/*"));
    }

    #[test]
    fn var_flags() {
        assert_eq!(parse_vars(&["bucket=a=b".into()]).unwrap()["bucket"], "a=b");
        assert!(parse_vars(&["bucket".into()]).is_err());
        assert!(parse_vars(&["=x".into()]).is_err());
    }
}
