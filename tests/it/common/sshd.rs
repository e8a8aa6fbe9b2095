//! A real OpenSSH server on a loopback port, one per test: throwaway host
//! and user keys in a temp dir, the current user (root in CI, hence
//! `PermitRootLogin prohibit-password`), killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    child: Child,
    pub port: u16,
    /// Holds the keys, config, logs; removed on drop.
    pub dir: tempfile::TempDir,
    /// The private key whose .pub is authorized.
    pub user_key: PathBuf,
    /// The server's public host key line (`ssh-ed25519 AAAA...`).
    pub host_pub: String,
}

/// `ssh-keygen -t ed25519` into `path` (no passphrase, no comment).
pub fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen (openssh-client) must be installed; scripts/test.sh installs it");
    assert!(st.success(), "ssh-keygen failed for {}", path.display());
}

/// Stand-in tools of an Amazon Linux 2023 host (cloud-init 22.2, which
/// rejects `--format json`; git; docker with compose v2 and buildx
/// `buildx`) in `dir/bin`, for an sshd's PATH.
pub fn stand_in_tools(dir: &Path, buildx: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tools = [
        (
            "cloud-init",
            "case \"$*\" in\n  *--format*) echo 'cloud-init status: error: unrecognized arguments: --format json' >&2; exit 2 ;;\n  *) printf 'status: done\\ntime: Tue, 05 Nov 2024 10:00:00 +0000\\ndetail:\\nDataSourceEc2Local\\n' ;;\nesac\n".to_string(),
        ),
        ("git", "echo 'git version 2.40.1'\n".to_string()),
        (
            "docker",
            format!("case \"$*\" in\n  --version) echo 'Docker version 25.0.8, build 0bab007' ;;\n  'version --format'*) echo '25.0.8' ;;\n  'compose version'*) echo 'Docker Compose version v2.29.7' ;;\n  'buildx version'*) echo 'github.com/docker/buildx v{buildx} 30feaa1' ;;\n  *) echo \"unexpected: $*\" >&2; exit 1 ;;\nesac\n"),
        ),
    ];
    for (name, body) in tools {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// The current user name, the one sshd will log in.
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Sshd {
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// `env` is set in every session (sshd's `SetEnv`), e.g. a PATH with
    /// stand-in tools. `SHLVL=1` is always set: Debian's bash sources
    /// ~/.bashrc for commands run by sshd unless it is nested, and root's
    /// bashrc here runs `pyenv init` (0.3 s per command, and it rewrites
    /// PATH); a real EC2 user's shell has no such cost.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let bin = super::required_env("OPENPAY_TEST_SSHD");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("user_key"));
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        // sshd refuses to start without its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").ok();
        let port = super::free_port();
        let mut config = format!(
            "ListenAddress 127.0.0.1\n\
             Port {port}\n\
             HostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\n\
             StrictModes no\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             MaxStartups 100\n\
             LogLevel VERBOSE\n",
            d = d.display()
        );
        config.push_str("SetEnv SHLVL=1");
        for (k, v) in env {
            config.push_str(&format!(" {k}={v}"));
        }
        config.push('\n');
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new(&bin)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sshd at {bin}: {e}"));
        let host_pub = std::fs::read_to_string(d.join("host_key.pub"))
            .unwrap()
            .trim()
            .to_string();
        let mut sshd = Sshd {
            child,
            port,
            user_key: d.join("user_key"),
            host_pub,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sshd.child.try_wait() {
                panic!("sshd exited with {status}: {}", sshd.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {port} within 10s: {}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sshd
    }

    /// sshd's own log (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// `user@127.0.0.1:port` for `--host`.
    pub fn target(&self) -> String {
        format!("{}@127.0.0.1:{}", current_user(), self.port)
    }

    /// A known_hosts line that trusts this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_pub)
    }

    /// A HOME for an openpay process in which each of `addresses` (an
    /// address an emulator invented, e.g. moto's public IP of an instance)
    /// leads to this server on loopback: `~/.ssh/config` has `Host
    /// <addresses>` with `HostName 127.0.0.1`, this port, the current user
    /// and the authorized key, and `~/.ssh/known_hosts` trusts the server.
    /// The invented address itself is never dialled.
    pub fn home_mapping(&self, addresses: &[&str]) -> PathBuf {
        let home = self.dir.path().join("home-mapped");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(
            home.join(".ssh/config"),
            format!(
                "Host {}\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n",
                addresses.join(" "),
                self.port,
                current_user(),
                self.user_key.display()
            ),
        )
        .unwrap();
        std::fs::write(
            home.join(".ssh/known_hosts"),
            format!("{}\n", self.known_hosts_line()),
        )
        .unwrap();
        home
    }

    /// How many logins this server accepted (from its own log).
    pub fn logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    /// Writes a known_hosts file trusting this server; returns its path.
    pub fn trusting_known_hosts(&self) -> PathBuf {
        let p = self.dir.path().join("known_hosts");
        std::fs::write(&p, format!("{}\n", self.known_hosts_line())).unwrap();
        p
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
