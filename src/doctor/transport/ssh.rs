//! The SSH transport: the same checks, run on a remote host over one
//! `ssh2` (libssh2) session.
//!
//! It behaves like `ssh -o StrictHostKeyChecking=yes -o BatchMode=yes`
//! with the user's `~/.ssh/config` applied: key authentication only, the
//! host key verified against known_hosts before any credential is sent,
//! an unknown key refused unless `--accept-new-host-key` (OpenSSH's
//! accept-new: record it and continue), a changed key always refused.
//! Everything up to an authenticated session is bounded by one connect
//! timeout, so a dead host costs the doctor that long and no more.
//!
//! Parts: `config` (ssh_config subset), `known_hosts` (verification and
//! accept-new), `auth` (which keys, in which order), `channel` (commands on
//! the shared non-blocking session, with deadlines).

mod auth;
mod channel;
pub mod config;
pub mod known_hosts;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ssh2::{MethodType, Session};

use super::{CmdOutput, Transport, TransportError};
use crate::exit::UsageError;
use config::SshConfig;
use known_hosts::{HostKey, KnownHostsFile, Verdict};

/// `--host USER@ADDR[:PORT]` as typed. `ADDR` may be an ssh_config alias,
/// a DNS name, an IPv4 address or a bracketed IPv6 address (`[::1]:2222`;
/// a bare IPv6 address without a port is accepted too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    pub fn parse(s: &str) -> Result<Self, UsageError> {
        let bad = |why: &str| {
            UsageError(format!(
                "invalid --host {s:?}: {why}; expected USER@ADDR[:PORT], e.g. ec2-user@203.0.113.10 or ec2-user@[2001:db8::1]:2222"
            ))
        };
        let s_trim = s.trim();
        if s_trim.is_empty() {
            return Err(bad("empty"));
        }
        if s_trim.chars().any(char::is_whitespace) {
            return Err(bad("contains whitespace"));
        }
        let (user, rest) = match s_trim.rsplit_once('@') {
            Some(("", r)) => return Err(bad(&format!("empty user before '@{r}'"))),
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, s_trim),
        };
        let parse_port = |p: &str| -> Result<u16, UsageError> {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(&format!("port {p:?} is not a number from 1 to 65535"))),
            }
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let Some((h, after)) = inner.split_once(']') else {
                return Err(bad("'[' without a closing ']'"));
            };
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(parse_port(p)?),
                    None => return Err(bad(&format!("unexpected {after:?} after ']'"))),
                },
            };
            (h.to_string(), port)
        } else if rest.matches(':').count() > 1 {
            // A bare IPv6 address: no port possible without brackets.
            (rest.to_string(), None)
        } else if let Some((h, p)) = rest.split_once(':') {
            (h.to_string(), Some(parse_port(p)?))
        } else {
            (rest.to_string(), None)
        };
        if host.is_empty() {
            return Err(bad("empty address"));
        }
        Ok(Self { user, host, port })
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// How to connect. `Default` is what `openpay doctor` uses without flags.
#[derive(Debug, Clone)]
pub struct SshOptions {
    pub identity_file: Option<PathBuf>,
    pub accept_new_host_key: bool,
    /// Default `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Default `~/.ssh/config`.
    pub ssh_config: Option<PathBuf>,
    /// Bounds TCP connect, handshake, host key check and authentication.
    pub connect_timeout: Duration,
}

impl Default for SshOptions {
    fn default() -> Self {
        Self {
            identity_file: None,
            accept_new_host_key: false,
            known_hosts: None,
            ssh_config: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// One authenticated session to one host; every probe is a channel on it.
pub struct SshTransport {
    session: Session,
    label: String,
    slots: channel::Slots,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("label", &self.label)
            .finish()
    }
}

/// Where a target resolves to after ssh_config.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    user: String,
    address: String,
    port: u16,
    identity_files: Vec<PathBuf>,
}

impl Endpoint {
    fn label(&self) -> String {
        let t = SshTarget {
            user: Some(self.user.clone()),
            host: self.address.clone(),
            port: Some(self.port),
        };
        t.to_string()
    }
}

fn local_user() -> Option<String> {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn resolve(
    target: &SshTarget,
    cfg: &SshConfig,
    home: Option<&Path>,
) -> Result<Endpoint, TransportError> {
    let hc = cfg.resolve(&target.host);
    let address = hc.hostname.clone().unwrap_or_else(|| target.host.clone());
    let port = target.port.or(hc.port).unwrap_or(22);
    let local = local_user();
    let user = target
        .user
        .clone()
        .or(hc.user.clone())
        .or(local.clone())
        .ok_or_else(|| {
            TransportError::Io(format!(
                "no SSH user for {target}: write it as USER@{target} or set User in ~/.ssh/config"
            ))
        })?;
    let home_for_tokens = home.map(Path::to_path_buf).unwrap_or_default();
    let identity_files = hc
        .identity_files
        .iter()
        .map(|v| {
            config::expand_identity(
                v,
                &home_for_tokens,
                local.as_deref().unwrap_or(""),
                &user,
                &address,
            )
        })
        .collect();
    Ok(Endpoint {
        user,
        address,
        port,
        identity_files,
    })
}

impl SshTransport {
    /// Connects, verifies the host key, authenticates. Blocking: call it
    /// from `spawn_blocking` (one per host, so hosts connect in parallel).
    pub fn connect(target: &SshTarget, opts: &SshOptions) -> Result<Self, TransportError> {
        let started = Instant::now();
        let deadline = started + opts.connect_timeout;
        let home = dirs::home_dir();
        let cfg_path = opts
            .ssh_config
            .clone()
            .or_else(|| home.as_ref().map(|h| h.join(".ssh/config")));
        let cfg = match &cfg_path {
            Some(p) => SshConfig::load(p).map_err(|e| {
                TransportError::Io(format!(
                    "invalid ssh config {e}; fix that line or pass another file"
                ))
            })?,
            None => SshConfig::default(),
        };
        let ep = resolve(target, &cfg, home.as_deref())?;
        let label = ep.label();
        let unreachable = |reason: String| TransportError::Unreachable {
            host: label.clone(),
            reason,
        };
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let timeout_reason = |step: &str| {
            format!(
                "{step} did not finish within the {:?} connect timeout",
                opts.connect_timeout
            )
        };

        // TCP, trying each resolved address within the one budget.
        let addrs: Vec<SocketAddr> = (ep.address.as_str(), ep.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("cannot resolve {}: {e}", ep.address)))?
            .collect();
        let mut last_err = format!("no address for {}", ep.address);
        let mut tcp = None;
        for addr in &addrs {
            let left = remaining();
            if left.is_zero() {
                last_err = timeout_reason("TCP connect");
                break;
            }
            match TcpStream::connect_timeout(addr, left) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    last_err = timeout_reason(&format!("TCP connect to {addr}"))
                }
                Err(e) => last_err = format!("TCP connect to {addr}: {e}"),
            }
        }
        let tcp = tcp.ok_or_else(|| unreachable(last_err))?;
        let _ = tcp.set_nodelay(true);

        let mut session = Session::new().map_err(|e| TransportError::Io(e.to_string()))?;
        session.set_tcp_stream(tcp);
        let set_budget = |s: &Session| -> Result<(), TransportError> {
            let left = remaining();
            if left.is_zero() {
                return Err(unreachable(timeout_reason("SSH setup")));
            }
            s.set_timeout(left.as_millis().clamp(1, u32::MAX as u128) as u32);
            Ok(())
        };

        // Ask for a host key type we can verify, as OpenSSH does.
        let kh_path = opts
            .known_hosts
            .clone()
            .or_else(|| home.as_ref().map(|h| h.join(".ssh/known_hosts")))
            .ok_or_else(|| {
                TransportError::Io(
                    "no home directory for ~/.ssh/known_hosts; pass a known_hosts path".into(),
                )
            })?;
        let known = KnownHostsFile::load(&kh_path)
            .map_err(|e| TransportError::Io(format!("cannot read {}: {e}", kh_path.display())))?;
        let entry = known_hosts::entry_name(&ep.address, ep.port);
        let known_types = known.known_types(&session, &entry);
        let pref = known_hosts::algorithm_preference(&known_types);
        if let Err(e) = session.method_pref(MethodType::HostKey, &pref) {
            tracing::debug!(error = %e, %pref, "host key preference not applied");
        }

        set_budget(&session)?;
        session.handshake().map_err(|e| {
            if e.code() == ssh2::ErrorCode::Session(-9) {
                // LIBSSH2_ERROR_TIMEOUT
                unreachable(timeout_reason("SSH handshake"))
            } else {
                unreachable(format!("SSH handshake failed: {}", e.message()))
            }
        })?;

        // The host key, before any credential leaves this machine.
        let key = HostKey::from_session(&session)
            .ok_or_else(|| unreachable("the server sent no host key we understand".into()))?;
        let host_key_err = |problem: &str, fix: String| TransportError::HostKey {
            host: label.clone(),
            problem: problem.to_string(),
            fingerprint: key.fingerprint(),
            fix,
        };
        match known.verify(&session, &entry, &key) {
            Verdict::Known => {}
            Verdict::Unknown if opts.accept_new_host_key => {
                known.append(&entry, &key).map_err(|e| {
                    TransportError::Io(format!(
                        "cannot record the host key of {label} in {}: {e}",
                        known.path().display()
                    ))
                })?;
                tracing::info!(host = %label, fingerprint = %key.fingerprint(), file = %known.path().display(), "new host key recorded");
            }
            Verdict::Unknown => {
                let also = if known_types.is_empty() {
                    String::new()
                } else {
                    format!(" (keys of type {} are on record)", known_types.join(", "))
                };
                return Err(host_key_err(
                    &format!(
                        "({}) is not in {}{also}",
                        key.type_name,
                        known.path().display()
                    ),
                    format!(
                        "compare the fingerprint with the host's console output, then rerun with --accept-new-host-key to record it (or `ssh-keyscan -p {} {} >> {}`)",
                        ep.port,
                        ep.address,
                        known.path().display()
                    ),
                ));
            }
            Verdict::Changed => {
                return Err(host_key_err(
                    &format!(
                        "({}) CHANGED: it differs from the key on record in {}",
                        key.type_name,
                        known.path().display()
                    ),
                    format!(
                        "this may be an attack; if the host was rebuilt, remove the old entry with `ssh-keygen -R '{entry}' -f {}` and connect again (--accept-new-host-key never overrides a changed key)",
                        known.path().display()
                    ),
                ));
            }
            Verdict::Revoked => {
                return Err(host_key_err(
                    &format!(
                        "({}) is marked @revoked in {}",
                        key.type_name,
                        known.path().display()
                    ),
                    "do not connect; ask the host's owner for its current key".into(),
                ));
            }
        }

        set_budget(&session)?;
        let sources = auth::sources(
            opts.identity_file.as_deref(),
            &ep.identity_files,
            home.as_deref(),
        );
        auth::authenticate(&session, &ep.user, &sources, opts.identity_file.is_some()).map_err(
            |why| {
                if remaining().is_zero() {
                    unreachable(timeout_reason("authentication"))
                } else {
                    unreachable(why)
                }
            },
        )?;

        session.set_timeout(0);
        session.set_blocking(false);
        tracing::debug!(host = %label, elapsed_ms = started.elapsed().as_millis() as u64, "ssh session ready");
        Ok(Self {
            session,
            label,
            slots: channel::Slots::new(channel::MAX_CHANNELS),
        })
    }
}

/// Exit status the `read_file` script uses for "no such file".
const ABSENT: i32 = 44;

impl Transport for SshTransport {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn exec(&self, command: &str, timeout: Duration) -> Result<CmdOutput, TransportError> {
        channel::run(&self.session, &self.slots, command, timeout)
    }

    /// `cat` on a channel: no SFTP subsystem needed on the host, and the
    /// same deadline and concurrency as every other probe.
    fn read_file(&self, path: &str, timeout: Duration) -> Result<Option<String>, TransportError> {
        let q = channel::shell_quote(path);
        let script = format!("if [ -e {q} ]; then exec cat -- {q}; else exit {ABSENT}; fi");
        let out = channel::run(&self.session, &self.slots, &script, timeout)?;
        match out.status {
            Some(0) => Ok(Some(out.stdout)),
            Some(ABSENT) => Ok(None),
            _ => Err(TransportError::Io(format!(
                "cannot read {path} on {}: {}",
                self.label,
                out.stderr.trim()
            ))),
        }
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        self.session.set_blocking(true);
        self.session.set_timeout(1000);
        let _ = self.session.disconnect(None, "openpay doctor done", None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(user: Option<&str>, host: &str, port: Option<u16>) -> SshTarget {
        SshTarget {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            SshTarget::parse("ec2-user@203.0.113.10").unwrap(),
            t(Some("ec2-user"), "203.0.113.10", None)
        );
        assert_eq!(
            SshTarget::parse("root@127.0.0.1:2222").unwrap(),
            t(Some("root"), "127.0.0.1", Some(2222))
        );
        assert_eq!(
            SshTarget::parse("me@[2001:db8::1]:2200").unwrap(),
            t(Some("me"), "2001:db8::1", Some(2200))
        );
        assert_eq!(SshTarget::parse("[::1]").unwrap(), t(None, "::1", None));
        assert_eq!(SshTarget::parse("::1").unwrap(), t(None, "::1", None));
        assert_eq!(
            SshTarget::parse("ingest-prod").unwrap(),
            t(None, "ingest-prod", None)
        );
        assert_eq!(
            SshTarget::parse("a@b@host").unwrap(),
            t(Some("a@b"), "host", None),
            "the last @ separates, as in ssh"
        );
    }

    #[test]
    fn rejects_bad_input_with_the_fix() {
        for (input, why) in [
            ("", "empty"),
            ("@host", "empty user"),
            ("u@", "empty address"),
            ("u@host:0", "port \"0\""),
            ("u@host:ssh", "port \"ssh\""),
            ("u@host:70000", "port \"70000\""),
            ("u@[::1", "closing ']'"),
            ("u@[::1]x", "after ']'"),
            ("u@ho st", "whitespace"),
        ] {
            let e = SshTarget::parse(input).unwrap_err().to_string();
            assert!(e.contains(why), "{input:?}: {e}");
            assert!(e.contains("expected USER@ADDR[:PORT]"), "{e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["u@h", "u@h:2", "u@[::1]:22", "h"] {
            assert_eq!(SshTarget::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn config_fills_what_the_target_leaves_open() {
        let cfg = SshConfig::parse(
            "Host box\n HostName 127.0.0.9\n User cfguser\n Port 2022\n IdentityFile ~/.ssh/box_%r\n",
            "t",
        )
        .unwrap();
        let home = Path::new("/home/me");
        let ep = resolve(&SshTarget::parse("box").unwrap(), &cfg, Some(home)).unwrap();
        assert_eq!(ep.address, "127.0.0.9");
        assert_eq!(ep.user, "cfguser");
        assert_eq!(ep.port, 2022);
        assert_eq!(
            ep.identity_files,
            vec![PathBuf::from("/home/me/.ssh/box_cfguser")]
        );
        assert_eq!(ep.label(), "cfguser@127.0.0.9:2022");
        let ep = resolve(
            &SshTarget::parse("other@box:2200").unwrap(),
            &cfg,
            Some(home),
        )
        .unwrap();
        assert_eq!(
            (ep.user.as_str(), ep.port),
            ("other", 2200),
            "the command line wins"
        );
    }
}
