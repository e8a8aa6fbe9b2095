//! Host key verification against an OpenSSH `known_hosts` file, with
//! OpenSSH's `StrictHostKeyChecking=accept-new` as the only opt-in.
//!
//! Matching is done by libssh2 (it understands hashed `|1|salt|hash`
//! names and `[host]:port` entries), but we feed it the file ourselves,
//! line by line and grouped by key type: libssh2 would otherwise stop at
//! the first line it cannot parse (a certificate authority, a key type it
//! does not know) and would call a host whose *other* key type is on
//! record "changed". Grouping by type also tells us which host key
//! algorithms to ask the server for, as OpenSSH does, so a host known by
//! its ECDSA key is not reported as changed just because libssh2 prefers
//! another algorithm.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};
use ssh2::{CheckResult, HostKeyType, KnownHostFileKind, Session};

/// What the file says about the key a server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is on record for this host.
    Known,
    /// No key of this type is on record for this host.
    Unknown,
    /// A different key of the same type is on record: possibly an attack.
    Changed,
    /// The key is marked `@revoked`.
    Revoked,
}

/// The lines of a known_hosts file, grouped by key type.
#[derive(Debug, Default)]
pub struct KnownHostsFile {
    path: PathBuf,
    /// key type (`ssh-ed25519`, ...) -> the plain lines holding that type.
    by_type: BTreeMap<String, Vec<String>>,
    /// base64 key blobs marked `@revoked`.
    revoked: Vec<String>,
}

impl KnownHostsFile {
    /// Reads `path`; a missing file knows no host (the first connection
    /// then needs `--accept-new-host-key`, exactly like OpenSSH).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let mut file = Self {
            path: path.to_path_buf(),
            ..Self::default()
        };
        file.read_lines(path)?;
        Ok(file)
    }

    /// Adds the entries of a system-wide file (`/etc/ssh/ssh_known_hosts`),
    /// read-only: as in OpenSSH, a key on record in either file is known,
    /// a different one of the same type in either is "changed", and new
    /// keys are appended to the user's file only.
    pub fn with_global(mut self, path: &Path) -> std::io::Result<Self> {
        self.read_lines(path)?;
        Ok(self)
    }

    fn read_lines(&mut self, path: &Path) -> std::io::Result<()> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let file = self;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                ["@revoked", _hosts, _ktype, key, ..] => file.revoked.push((*key).to_string()),
                [marker, ..] if marker.starts_with('@') => {
                    tracing::debug!(%marker, "known_hosts marker not supported; line ignored");
                }
                [_hosts, ktype, _key, ..] => file
                    .by_type
                    .entry((*ktype).to_string())
                    .or_default()
                    .push(line.to_string()),
                _ => tracing::debug!("malformed known_hosts line ignored"),
            }
        }
        Ok(())
    }

    /// The key types on record for `name` (see [`entry_name`]), in the
    /// order OpenSSH prefers them.
    pub fn known_types(&self, session: &Session, name: &str) -> Vec<String> {
        // A key that matches nothing: a "mismatch" then means the host
        // has an entry of this type.
        let probe = [0u8; 32];
        let mut types: Vec<String> = self
            .by_type
            .keys()
            .filter(|ktype| {
                matches!(
                    self.check(session, ktype, name, &probe),
                    Some(CheckResult::Mismatch)
                )
            })
            .cloned()
            .collect();
        types.sort_by_key(|t| type_rank(t));
        types
    }

    /// Checks the key the server presented.
    pub fn verify(&self, session: &Session, name: &str, key: &HostKey) -> Verdict {
        let b64 = key.base64();
        if self.revoked.contains(&b64) {
            return Verdict::Revoked;
        }
        match self.check(session, &key.type_name, name, &key.blob) {
            Some(CheckResult::Match) => Verdict::Known,
            Some(CheckResult::Mismatch) => Verdict::Changed,
            _ => Verdict::Unknown,
        }
    }

    fn check(&self, session: &Session, ktype: &str, name: &str, key: &[u8]) -> Option<CheckResult> {
        let lines = self.by_type.get(ktype)?;
        let mut kh = session.known_hosts().ok()?;
        for line in lines {
            if let Err(e) = kh.read_str(line, KnownHostFileKind::OpenSSH) {
                tracing::debug!(error = %e, "known_hosts line libssh2 cannot read; ignored");
            }
        }
        // Port -1: `name` is already in known_hosts form, `[host]:port`
        // for non-default ports, so entries for port 22 never match port
        // 2222 (OpenSSH's rule; libssh2's own port fallback is looser).
        Some(kh.check(name, key))
    }

    /// Records a newly accepted key (OpenSSH accept-new): appends one
    /// plain line, creating the file and its directory when needed, and
    /// never rewrites the lines already there.
    pub fn append(&self, name: &str, key: &HostKey) -> std::io::Result<()> {
        if let Some(dir) = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            std::fs::create_dir_all(dir)?;
            set_mode(dir, 0o700)?;
        }
        let needs_newline = std::fs::read(&self.path)
            .map(|b| !b.is_empty() && !b.ends_with(b"\n"))
            .unwrap_or(false);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let sep = if needs_newline { "\n" } else { "" };
        writeln!(f, "{sep}{name} {} {}", key.type_name, key.base64())?;
        f.sync_all()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// How a host is named in known_hosts: bare for port 22, `[host]:port`
/// otherwise (IPv6 addresses go inside the brackets without their own).
pub fn entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The key a server presented during the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// The wire/known_hosts type name, e.g. `ssh-ed25519`.
    pub type_name: String,
    /// The raw public key blob.
    pub blob: Vec<u8>,
}

impl HostKey {
    pub fn from_session(session: &Session) -> Option<Self> {
        let (blob, kind) = session.host_key()?;
        Some(Self {
            type_name: key_type_name(kind)?.to_string(),
            blob: blob.to_vec(),
        })
    }

    /// `SHA256:<base64, no padding>`, as `ssh-keygen -lf` and ssh print it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(&self.blob);
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
        )
    }

    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.blob)
    }
}

fn key_type_name(kind: HostKeyType) -> Option<&'static str> {
    Some(match kind {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => return None,
    })
}

/// OpenSSH's client preference among key types.
fn type_rank(ktype: &str) -> usize {
    const ORDER: [&str; 6] = [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "ssh-dss",
    ];
    ORDER
        .iter()
        .position(|t| *t == ktype)
        .unwrap_or(ORDER.len())
}

/// The host key algorithms to offer, known types first, so the server
/// presents a key we can verify when it has one.
pub fn algorithm_preference(known_types: &[String]) -> String {
    let algorithms_for = |ktype: &str| -> Vec<&'static str> {
        match ktype {
            "ssh-ed25519" => vec!["ssh-ed25519"],
            "ecdsa-sha2-nistp256" => vec!["ecdsa-sha2-nistp256"],
            "ecdsa-sha2-nistp384" => vec!["ecdsa-sha2-nistp384"],
            "ecdsa-sha2-nistp521" => vec!["ecdsa-sha2-nistp521"],
            "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            "ssh-dss" => vec!["ssh-dss"],
            _ => vec![],
        }
    };
    let mut out: Vec<&'static str> = Vec::new();
    let all = [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
    ];
    for t in known_types.iter().map(String::as_str).chain(all) {
        for alg in algorithms_for(t) {
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The host key of a throwaway `ssh-keygen -t ed25519` run.
    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAINL4RTALyLh1QlrRYK2iWVNspFsheltnEydRvuDQ5wyb";
    const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIGYma4d8+IZjlBWdAQiQ65+s3whNa5ESfmRESrUfRJBN";

    fn key(b64: &str) -> HostKey {
        HostKey {
            type_name: "ssh-ed25519".into(),
            blob: base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        }
    }

    fn file_with(text: &str) -> (tempfile::TempDir, KnownHostsFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, text).unwrap();
        let f = KnownHostsFile::load(&path).unwrap();
        (dir, f)
    }

    #[test]
    fn fingerprint_matches_openssh_format() {
        // `ssh-keygen -lf` on that key printed this fingerprint.
        assert_eq!(
            key(ED25519).fingerprint(),
            "SHA256:6WJ+N16iWt3zCrDvCzFj3U0SIhPRALJe4fCNWe7k3lA"
        );
    }

    #[test]
    fn entry_names_follow_openssh() {
        assert_eq!(entry_name("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(entry_name("10.0.0.1", 2222), "[10.0.0.1]:2222");
        assert_eq!(entry_name("::1", 2222), "[::1]:2222");
    }

    #[test]
    fn plain_port_and_changed_entries() {
        let s = Session::new().unwrap();
        let (_d, f) = file_with(&format!(
            "# comment\n@cert-authority *.example ssh-ed25519 {OTHER}\n\
             [127.0.0.1]:2222 ssh-ed25519 {ED25519}\nhost.example ssh-ed25519 {OTHER}\n"
        ));
        assert_eq!(
            f.verify(&s, "[127.0.0.1]:2222", &key(ED25519)),
            Verdict::Known
        );
        assert_eq!(
            f.verify(&s, "[127.0.0.1]:2223", &key(ED25519)),
            Verdict::Unknown
        );
        assert_eq!(f.verify(&s, "127.0.0.1", &key(ED25519)), Verdict::Unknown);
        assert_eq!(
            f.verify(&s, "host.example", &key(ED25519)),
            Verdict::Changed
        );
        assert_eq!(f.known_types(&s, "host.example"), vec!["ssh-ed25519"]);
        assert!(f.known_types(&s, "nobody.example").is_empty());
    }

    #[test]
    fn hashed_entries_match() {
        // `ssh-keygen -H` output for the name "[127.0.0.1]:2222".
        let s = Session::new().unwrap();
        let (_d, f) = file_with(&format!(
            "|1|vWpXSpqgCKLRcVsk0L9kfazJ3HU=|fzX3e7vxrqxj0feqtgAbh3unUJ0= ssh-ed25519 {ED25519}\n"
        ));
        assert_eq!(
            f.verify(&s, "[127.0.0.1]:2222", &key(ED25519)),
            Verdict::Known
        );
        assert_eq!(
            f.verify(&s, "[127.0.0.1]:2222", &key(OTHER)),
            Verdict::Changed
        );
        assert_eq!(f.verify(&s, "127.0.0.2", &key(ED25519)), Verdict::Unknown);
    }

    #[test]
    fn revoked_key_is_refused() {
        let s = Session::new().unwrap();
        let (_d, f) = file_with(&format!(
            "@revoked * ssh-ed25519 {OTHER}\n127.0.0.1 ssh-ed25519 {OTHER}\n"
        ));
        assert_eq!(f.verify(&s, "127.0.0.1", &key(OTHER)), Verdict::Revoked);
    }

    #[test]
    fn append_creates_and_keeps_existing_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let f = KnownHostsFile::load(&path).unwrap();
        f.append("[127.0.0.1]:2222", &key(ED25519)).unwrap();
        std::fs::write(
            &path,
            format!(
                "{}no-newline ssh-ed25519 {OTHER}",
                std::fs::read_to_string(&path).unwrap()
            ),
        )
        .unwrap();
        f.append("[127.0.0.1]:2223", &key(ED25519)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], format!("[127.0.0.1]:2222 ssh-ed25519 {ED25519}"));
        assert!(lines[1].starts_with("no-newline "));
        let s = Session::new().unwrap();
        let again = KnownHostsFile::load(&path).unwrap();
        assert_eq!(
            again.verify(&s, "[127.0.0.1]:2223", &key(ED25519)),
            Verdict::Known
        );
    }

    #[test]
    fn known_types_come_first_in_the_offer() {
        let pref = algorithm_preference(&["ssh-rsa".to_string()]);
        assert!(
            pref.starts_with("rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-ed25519"),
            "{pref}"
        );
        let none = algorithm_preference(&[]);
        assert!(none.starts_with("ssh-ed25519,"), "{none}");
    }
}
