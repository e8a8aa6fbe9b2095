//! The check functions, one file per check or small family, and the one
//! registry that maps catalog ids to them. Adding a check touches two
//! places besides its own file: its `[[check]]` table in `checks/*.toml`
//! and one line in the `checks!` list below, which both declares the
//! module and registers its functions. A unit test fails when the two
//! disagree (an id without a function, a function without an id).

use super::check::{CheckFn, Outcome};
use super::transport::{CmdOutput, TransportError};

/// `module: "catalog.id" => function, ...;` declares `pub mod module` and
/// registers each function under its id, so a check cannot be declared
/// without being registered.
macro_rules! checks {
    ($($module:ident: $($id:literal => $f:ident),+;)+) => {
        $(pub mod $module;)+

        /// Every check function, by catalog id.
        pub fn registry() -> &'static [(&'static str, CheckFn)] {
            &[$($(($id, $module::$f)),+),+]
        }
    };
}

checks! {
    cloud_init: "host.cloud-init" => run;
    user_data_log: "host.user-data-log" => run;
    tools: "host.git" => run_git, "host.docker" => run_docker, "host.compose" => run_compose, "host.buildx" => run_buildx;
    aws_identity: "aws.identity" => run;
    aws_iam_put_object: "aws.iam.put-object" => run;
    net_ssh_allowlist: "net.ssh-allowlist" => run;
    tf_ssh_allowlist: "tf.ssh-allowlist" => run;
}

/// Which instance `net.ssh-allowlist` judges (a helper, not a check).
pub mod instance;

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
