//! Public-key authentication, never passwords: a doctor run must not hang
//! on a prompt, and a host that only takes passwords is misconfigured.
//!
//! Sources, in order (the first that authenticates wins):
//! `--identity-file` alone when given (an explicit choice is not second-
//! guessed), else ssh_config's IdentityFile entries, then the ssh-agent,
//! then `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`, as ssh does.

use std::path::{Path, PathBuf};

use ssh2::Session;

/// Where a key comes from, for the "tried ..." part of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Agent,
}

/// The ordered list of sources to try.
pub fn sources(
    explicit: Option<&Path>,
    config_files: &[PathBuf],
    home: Option<&Path>,
) -> Vec<KeySource> {
    if let Some(p) = explicit {
        return vec![KeySource::File(p.to_path_buf())];
    }
    let mut out: Vec<KeySource> = config_files
        .iter()
        .map(|p| KeySource::File(p.clone()))
        .collect();
    out.push(KeySource::Agent);
    if let Some(home) = home {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let p = home.join(".ssh").join(name);
            if !out.contains(&KeySource::File(p.clone())) {
                out.push(KeySource::File(p));
            }
        }
    }
    out
}

/// Tries each source until one authenticates. The error lists what was
/// tried and why each failed (paths and libssh2 messages, never key
/// material), so "wrong key" and "key file missing" read differently.
pub fn authenticate(
    session: &Session,
    user: &str,
    sources: &[KeySource],
    explicit: bool,
) -> Result<(), String> {
    let mut tried = Vec::new();
    for source in sources {
        match source {
            KeySource::File(path) => {
                if !path.exists() {
                    // Defaults and config entries that do not exist are
                    // normal; an explicit file that does not is the error.
                    if explicit {
                        tried.push(format!("{} (no such file)", path.display()));
                    }
                    continue;
                }
                match session.userauth_pubkey_file(user, None, path, None) {
                    Ok(()) if session.authenticated() => return Ok(()),
                    Ok(()) => tried.push(format!("{} (not accepted)", path.display())),
                    Err(e) => tried.push(format!("{} ({})", path.display(), e.message())),
                }
            }
            KeySource::Agent => {
                if std::env::var_os("SSH_AUTH_SOCK").is_none() {
                    continue;
                }
                match try_agent(session, user) {
                    Ok(()) => return Ok(()),
                    Err(why) => tried.push(format!("ssh-agent ({why})")),
                }
            }
        }
    }
    if tried.is_empty() {
        return Err(format!(
            "no SSH key found for {user}: pass --identity-file, add IdentityFile to ~/.ssh/config, or load a key into ssh-agent"
        ));
    }
    Err(format!(
        "public key authentication as {user} failed; tried {}; check that the key's .pub is in the host's authorized_keys for {user}",
        tried.join(", ")
    ))
}

fn try_agent(session: &Session, user: &str) -> Result<(), String> {
    let mut agent = session.agent().map_err(|e| e.message().to_string())?;
    agent.connect().map_err(|e| e.message().to_string())?;
    agent
        .list_identities()
        .map_err(|e| e.message().to_string())?;
    let identities = agent.identities().map_err(|e| e.message().to_string())?;
    if identities.is_empty() {
        let _ = agent.disconnect();
        return Err("no identities loaded".into());
    }
    let n = identities.len();
    for id in &identities {
        if agent.userauth(user, id).is_ok() && session.authenticated() {
            let _ = agent.disconnect();
            return Ok(());
        }
    }
    let _ = agent.disconnect();
    Err(format!("{n} identities, none accepted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_identity_is_the_only_source() {
        let s = sources(
            Some(Path::new("/k/explicit")),
            &[PathBuf::from("/k/config")],
            Some(Path::new("/home/me")),
        );
        assert_eq!(s, vec![KeySource::File("/k/explicit".into())]);
    }

    #[test]
    fn config_then_agent_then_defaults() {
        let s = sources(
            None,
            &[
                PathBuf::from("/k/config"),
                PathBuf::from("/home/me/.ssh/id_rsa"),
            ],
            Some(Path::new("/home/me")),
        );
        assert_eq!(
            s,
            vec![
                KeySource::File("/k/config".into()),
                KeySource::File("/home/me/.ssh/id_rsa".into()),
                KeySource::Agent,
                KeySource::File("/home/me/.ssh/id_ed25519".into()),
                KeySource::File("/home/me/.ssh/id_ecdsa".into()),
            ]
        );
    }
}
