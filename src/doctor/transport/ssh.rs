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
mod tunnel;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ssh2::{MethodType, Session};

use super::{CmdOutput, Transport, TransportError};
use crate::doctor::DoctorError;
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
    pub fn parse(s: &str) -> Result<Self, DoctorError> {
        let bad = |why: &str| DoctorError::Host {
            input: s.to_string(),
            why: why.to_string(),
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
        let parse_port = |p: &str| -> Result<u16, DoctorError> {
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
    /// Also trusted, never written: the system-wide file fleets distribute.
    pub global_known_hosts: PathBuf,
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
            global_known_hosts: PathBuf::from("/etc/ssh/ssh_known_hosts"),
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
    /// The bastion and the tunnel this session runs through (ProxyJump);
    /// declared last so they outlive the session when dropped.
    _via: Option<(tunnel::Tunnel, Box<SshTransport>)>,
}

/// Bastions in a row (a bastion's own ProxyJump) before we call it a loop.
const MAX_JUMPS: usize = 4;

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
    /// ProxyJump: the bastion, as a target of its own.
    jump: Option<SshTarget>,
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
    let jump = match hc.proxy_jump.as_deref() {
        None => None,
        Some(hops) if hops.contains(',') => {
            return Err(TransportError::Io(format!(
                "ProxyJump {hops} for {target}: only one bastion per host is supported; give the bastion its own ProxyJump in ~/.ssh/config instead"
            )));
        }
        Some(hop) => Some(
            SshTarget::parse(hop)
                .map_err(|e| TransportError::Io(format!("ProxyJump {hop} for {target}: {e}")))?,
        ),
    };
    Ok(Endpoint {
        user,
        address,
        port,
        identity_files,
        jump,
    })
}

/// The one connect-timeout budget shared by every step up to a session.
struct Budget<'a> {
    deadline: Instant,
    timeout: Duration,
    label: &'a str,
}

impl Budget<'_> {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn unreachable(&self, reason: String) -> TransportError {
        TransportError::Unreachable {
            host: self.label.to_string(),
            reason,
        }
    }

    fn timed_out(&self, step: &str) -> TransportError {
        self.unreachable(format!(
            "{step} did not finish within the {:?} connect timeout",
            self.timeout
        ))
    }

    /// Bounds the next blocking libssh2 call by what is left.
    fn arm(&self, session: &Session, step: &str) -> Result<(), TransportError> {
        let left = self.remaining();
        if left.is_zero() {
            return Err(self.timed_out(step));
        }
        session.set_timeout(left.as_millis().clamp(1, u32::MAX as u128) as u32);
        Ok(())
    }
}

/// TCP to the first resolved address that answers, within the budget.
fn open_tcp(ep: &Endpoint, budget: &Budget<'_>) -> Result<TcpStream, TransportError> {
    let addrs: Vec<SocketAddr> = (ep.address.as_str(), ep.port)
        .to_socket_addrs()
        .map_err(|e| budget.unreachable(format!("cannot resolve {}: {e}", ep.address)))?
        .collect();
    let mut last_err = budget.unreachable(format!("no address for {}", ep.address));
    for addr in &addrs {
        let left = budget.remaining();
        if left.is_zero() {
            return Err(budget.timed_out("TCP connect"));
        }
        match TcpStream::connect_timeout(addr, left) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last_err = budget.timed_out(&format!("TCP connect to {addr}"))
            }
            Err(e) => last_err = budget.unreachable(format!("TCP connect to {addr}: {e}")),
        }
    }
    Err(last_err)
}

/// Applies the host key policy to the key the server presented: known
/// passes, unknown is recorded only with `accept_new`, changed and revoked
/// never pass. Runs before any credential is sent.
fn verify_host_key(
    session: &Session,
    known: &KnownHostsFile,
    ep: &Endpoint,
    label: &str,
    accept_new: bool,
) -> Result<(), TransportError> {
    let entry = known_hosts::entry_name(&ep.address, ep.port);
    let key = HostKey::from_session(session).ok_or_else(|| TransportError::Unreachable {
        host: label.to_string(),
        reason: "the server sent no host key we understand".into(),
    })?;
    let file = known.path().display();
    let (problem, fix) = match known.verify(session, &entry, &key) {
        Verdict::Known => return Ok(()),
        Verdict::Unknown if accept_new => {
            known.append(&entry, &key).map_err(|e| {
                TransportError::Io(format!(
                    "cannot record the host key of {label} in {file}: {e}"
                ))
            })?;
            tracing::info!(host = %label, fingerprint = %key.fingerprint(), file = %file, "new host key recorded");
            return Ok(());
        }
        Verdict::Unknown => {
            let on_record = known.known_types(session, &entry);
            let also = if on_record.is_empty() {
                String::new()
            } else {
                format!(" (keys of type {} are on record)", on_record.join(", "))
            };
            (
                format!("({}) is not in {file}{also}", key.type_name),
                format!(
                    "compare the fingerprint with the host's console output, then rerun with --accept-new-host-key to record it (or `ssh-keyscan -p {} {} >> {file}`)",
                    ep.port, ep.address
                ),
            )
        }
        Verdict::Changed => (
            format!(
                "({}) CHANGED: it differs from the key on record in {file}",
                key.type_name
            ),
            format!(
                "this may be an attack; if the host was rebuilt, remove the old entry with `ssh-keygen -R '{entry}' -f {file}` and connect again (--accept-new-host-key never overrides a changed key)"
            ),
        ),
        Verdict::Revoked => (
            format!("({}) is marked @revoked in {file}", key.type_name),
            "do not connect; ask the host's owner for its current key".into(),
        ),
    };
    Err(TransportError::HostKey {
        host: label.to_string(),
        problem,
        fingerprint: key.fingerprint(),
        fix,
    })
}

impl SshTransport {
    /// Connects, verifies the host key, authenticates. Blocking: call it
    /// from `spawn_blocking` (one per host, so hosts connect in parallel).
    pub fn connect(target: &SshTarget, opts: &SshOptions) -> Result<Self, TransportError> {
        Self::connect_hop(target, opts, 0)
    }

    fn connect_hop(
        target: &SshTarget,
        opts: &SshOptions,
        jumps: usize,
    ) -> Result<Self, TransportError> {
        let started = Instant::now();
        let home = dirs::home_dir();
        let in_home = |rel: &str| home.as_ref().map(|h| h.join(rel));
        let cfg = match opts.ssh_config.clone().or_else(|| in_home(".ssh/config")) {
            Some(p) => SshConfig::load(&p).map_err(|e| {
                TransportError::Io(format!(
                    "invalid ssh config {e}; fix that line or pass another file"
                ))
            })?,
            None => SshConfig::default(),
        };
        let kh_path = opts
            .known_hosts
            .clone()
            .or_else(|| in_home(".ssh/known_hosts"))
            .ok_or_else(|| {
                TransportError::Io(
                    "no home directory for ~/.ssh/known_hosts; pass a known_hosts path".into(),
                )
            })?;
        let known = KnownHostsFile::load(&kh_path)
            .map_err(|e| TransportError::Io(format!("cannot read {}: {e}", kh_path.display())))?
            .with_global(&opts.global_known_hosts)
            .map_err(|e| {
                TransportError::Io(format!(
                    "cannot read {}: {e}",
                    opts.global_known_hosts.display()
                ))
            })?;
        let ep = resolve(target, &cfg, home.as_deref())?;
        let label = ep.label();
        let budget = Budget {
            deadline: started + opts.connect_timeout,
            timeout: opts.connect_timeout,
            label: &label,
        };

        let mut session = Session::new().map_err(|e| TransportError::Io(e.to_string()))?;
        let via = match &ep.jump {
            None => {
                session.set_tcp_stream(open_tcp(&ep, &budget)?);
                None
            }
            Some(hop) => {
                if jumps >= MAX_JUMPS {
                    return Err(budget.unreachable(format!(
                        "more than {MAX_JUMPS} ProxyJump hops (a loop in ~/.ssh/config?)"
                    )));
                }
                let bastion = Self::connect_hop(hop, opts, jumps + 1)
                    .map_err(|e| budget.unreachable(format!("through bastion {hop}: {e}")))?;
                let (stream, tunnel) =
                    tunnel::open(&bastion.session, &ep.address, ep.port, budget.deadline)
                        .map_err(|why| budget.unreachable(why))?;
                session.set_tcp_stream(stream);
                Some((tunnel, Box::new(bastion)))
            }
        };
        // Ask for a host key type we can verify, as OpenSSH does.
        let pref = known_hosts::algorithm_preference(
            &known.known_types(&session, &known_hosts::entry_name(&ep.address, ep.port)),
        );
        if let Err(e) = session.method_pref(MethodType::HostKey, &pref) {
            tracing::debug!(error = %e, %pref, "host key preference not applied");
        }
        budget.arm(&session, "SSH handshake")?;
        session.handshake().map_err(|e| {
            if e.code() == ssh2::ErrorCode::Session(LIBSSH2_ERROR_TIMEOUT) {
                budget.timed_out("SSH handshake")
            } else {
                budget.unreachable(format!("SSH handshake failed: {}", e.message()))
            }
        })?;

        verify_host_key(&session, &known, &ep, &label, opts.accept_new_host_key)?;

        budget.arm(&session, "authentication")?;
        let sources = auth::sources(
            opts.identity_file.as_deref(),
            &ep.identity_files,
            home.as_deref(),
        );
        auth::authenticate(&session, &ep.user, &sources, opts.identity_file.is_some()).map_err(
            |why| {
                if budget.remaining().is_zero() {
                    budget.timed_out("authentication")
                } else {
                    budget.unreachable(why)
                }
            },
        )?;

        // From here on, probes share the session concurrently (channel.rs).
        session.set_timeout(0);
        session.set_blocking(false);
        tracing::debug!(host = %label, elapsed_ms = started.elapsed().as_millis() as u64, "ssh session ready");
        Ok(Self {
            session,
            label,
            slots: channel::Slots::new(channel::MAX_CHANNELS),
            _via: via,
        })
    }
}

/// libssh2's `LIBSSH2_ERROR_TIMEOUT`: a blocking call ran out of time.
const LIBSSH2_ERROR_TIMEOUT: i32 = -9;

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
