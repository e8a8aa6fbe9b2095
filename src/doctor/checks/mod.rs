//! The check functions, one file per check or small family, and the one
//! registry that maps catalog ids to them. Adding a check touches two
//! places: its `[[check]]` table in `checks/*.toml` and one line here.

pub mod aws_iam_put_object;
pub mod aws_identity;
pub mod cloud_init;
pub mod net_ssh_allowlist;
pub mod tf_ssh_allowlist;
pub mod tools;
pub mod user_data_log;

use super::check::{CheckFn, Outcome};
use super::transport::{CmdOutput, TransportError};

/// Every check function, by catalog id.
pub fn registry() -> &'static [(&'static str, CheckFn)] {
    &[
        ("host.cloud-init", cloud_init::run),
        ("host.user-data-log", user_data_log::run),
        ("host.git", tools::run_git),
        ("host.docker", tools::run_docker),
        ("host.compose", tools::run_compose),
        ("host.buildx", tools::run_buildx),
        ("aws.identity", aws_identity::run),
        ("aws.iam.put-object", aws_iam_put_object::run),
        ("net.ssh-allowlist", net_ssh_allowlist::run),
        ("tf.ssh-allowlist", tf_ssh_allowlist::run),
    ]
}

/// The function registered for `id`.
pub fn lookup(id: &str) -> Option<CheckFn> {
    registry()
        .iter()
        .find(|(name, _)| *name == id)
        .map(|(_, f)| *f)
}

/// `sh` exits 127 when the command does not exist.
pub(crate) fn command_missing(out: &CmdOutput) -> bool {
    out.status == Some(127)
}

/// A transport error inside a check: that check fails, with the reason.
pub(crate) fn transport_failure(what: &str, e: TransportError) -> Outcome {
    Outcome::fail(format!("could not run `{what}`: {e}"))
}

/// Reads `tests/fixtures/doctor/<dir>/<name>` without its leading `#`
/// lines (each fixture cites where its verbatim output came from).
#[cfg(test)]
pub(crate) fn fixture(dir: &str, name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/doctor/{dir}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::catalog::Catalog;

    #[test]
    fn every_catalog_id_has_a_fn_and_every_fn_an_entry() {
        let catalog = Catalog::embedded();
        for spec in catalog.checks() {
            assert!(
                lookup(&spec.id).is_some(),
                "catalog id {} has no check fn",
                spec.id
            );
        }
        for (id, _) in registry() {
            assert!(
                catalog.get(id).is_some(),
                "check fn {id} has no catalog entry"
            );
        }
        let mut ids: Vec<_> = registry().iter().map(|(id, _)| *id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), registry().len(), "duplicate registry id");
    }
}
