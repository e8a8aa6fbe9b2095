//! The SSH transport against a real sshd on loopback: commands, files,
//! host key policy, authentication failures, timeouts, ssh_config aliases.
//! No test reads the real ~/.ssh: every path is in a temp dir.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use openpay::doctor::transport::ssh::{SshOptions, SshTarget, SshTransport};
use openpay::doctor::transport::{Transport, TransportError};

use crate::common::sshd::{Sshd, current_user, keygen};

const T: Duration = Duration::from_secs(10);

/// Options that trust `sshd` and never touch the real ~/.ssh.
fn trusting(sshd: &Sshd) -> SshOptions {
    SshOptions {
        identity_file: Some(sshd.user_key.clone()),
        known_hosts: Some(sshd.trusting_known_hosts()),
        ssh_config: Some(sshd.dir.path().join("no_ssh_config")),
        ..SshOptions::default()
    }
}

fn connect(sshd: &Sshd, opts: &SshOptions) -> Result<SshTransport, TransportError> {
    SshTransport::connect(&SshTarget::parse(&sshd.target()).unwrap(), opts)
}

/// What `ssh-keygen -lf` says the server's fingerprint is.
fn openssh_fingerprint(sshd: &Sshd) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(sshd.dir.path().join("host_key.pub"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn exec_returns_stdout_stderr_and_status() {
    let sshd = Sshd::start();
    let t = connect(&sshd, &trusting(&sshd)).unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(
        t.label(),
        format!("{}@127.0.0.1:{}", current_user(), sshd.port)
    );
    let out = t.exec("echo out; echo 'it''s' err >&2; exit 3", T).unwrap();
    assert_eq!(out.status, Some(3));
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "its err\n");
    // sh -c semantics: pipes, variables, quotes survive the trip.
    let out = t.exec(r#"x='a b'; printf '%s|' "$x" | tr a A"#, T).unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "A b|");
    // A large output is collected whole.
    let out = t.exec("head -c 3000000 /dev/zero | tr '\\0' x", T).unwrap();
    assert_eq!(out.stdout.len(), 3_000_000);
}

#[test]
fn read_file_present_and_absent() {
    let sshd = Sshd::start();
    let t = connect(&sshd, &trusting(&sshd)).unwrap();
    let path = sshd.dir.path().join("user-data.log");
    std::fs::write(&path, "line 1\nit's line 2\n").unwrap();
    let got = t.read_file(path.to_str().unwrap(), T).unwrap();
    assert_eq!(got.as_deref(), Some("line 1\nit's line 2\n"));
    let missing = sshd.dir.path().join("no such file.log");
    assert_eq!(t.read_file(missing.to_str().unwrap(), T).unwrap(), None);
    // A directory is not "absent": it is an error that says what happened.
    let err = t
        .read_file(sshd.dir.path().to_str().unwrap(), T)
        .unwrap_err();
    assert!(err.to_string().contains("Is a directory"), "{err}");
}

#[test]
fn unknown_host_key_is_refused_with_its_fingerprint() {
    let sshd = Sshd::start();
    let kh = sshd.dir.path().join("empty_known_hosts");
    let opts = SshOptions {
        known_hosts: Some(kh.clone()),
        ..trusting(&sshd)
    };
    let err = connect(&sshd, &opts).unwrap_err();
    let TransportError::HostKey { fingerprint, .. } = &err else {
        panic!("expected a host key refusal, got {err}");
    };
    assert_eq!(fingerprint, &openssh_fingerprint(&sshd));
    let msg = err.to_string();
    assert!(msg.contains(&openssh_fingerprint(&sshd)), "{msg}");
    assert!(msg.contains("--accept-new-host-key"), "{msg}");
    assert!(!kh.exists(), "nothing may be recorded without the flag");
    // Refused before authenticating: sshd saw no key offered.
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());
}

#[test]
fn accept_new_records_the_key_and_the_next_connect_needs_no_flag() {
    let sshd = Sshd::start();
    let kh = sshd.dir.path().join("sub/known_hosts");
    let opts = SshOptions {
        known_hosts: Some(kh.clone()),
        accept_new_host_key: true,
        ..trusting(&sshd)
    };
    let t = connect(&sshd, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(t.exec("true", T).unwrap().success());
    let recorded = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(recorded, format!("{}\n", sshd.known_hosts_line()));
    let again = SshOptions {
        accept_new_host_key: false,
        ..opts
    };
    let t = connect(&sshd, &again).unwrap_or_else(|e| panic!("{e}"));
    assert!(t.exec("true", T).unwrap().success());
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        recorded,
        "recorded once"
    );
    // OpenSSH itself accepts what we wrote.
    let st = std::process::Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", sshd.port))
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(st.status.success(), "ssh-keygen -F did not find the entry");
}

#[test]
fn hashed_known_hosts_entry_is_honoured() {
    let sshd = Sshd::start();
    let kh = sshd.trusting_known_hosts();
    let st = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(st.status.success());
    let text = std::fs::read_to_string(&kh).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    let opts = SshOptions {
        known_hosts: Some(kh),
        ..trusting(&sshd)
    };
    let t = connect(&sshd, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(t.exec("true", T).unwrap().success());
}

#[test]
fn changed_host_key_is_refused_even_with_accept_new() {
    let sshd = Sshd::start();
    let other = sshd.dir.path().join("impostor");
    keygen(&other);
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let kh = sshd.dir.path().join("known_hosts_changed");
    let line = format!("[127.0.0.1]:{} {}\n", sshd.port, other_pub.trim());
    std::fs::write(&kh, &line).unwrap();
    for accept in [false, true] {
        let opts = SshOptions {
            known_hosts: Some(kh.clone()),
            accept_new_host_key: accept,
            ..trusting(&sshd)
        };
        let err = connect(&sshd, &opts).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TransportError::HostKey { .. }), "{msg}");
        assert!(msg.contains("CHANGED"), "{msg}");
        assert!(msg.contains(&openssh_fingerprint(&sshd)), "{msg}");
        assert!(msg.contains("ssh-keygen -R"), "{msg}");
        assert_eq!(
            std::fs::read_to_string(&kh).unwrap(),
            line,
            "file untouched"
        );
    }
}

#[test]
fn wrong_user_key_is_unreachable_quickly() {
    let sshd = Sshd::start();
    let wrong = sshd.dir.path().join("wrong_key");
    keygen(&wrong);
    let opts = SshOptions {
        identity_file: Some(wrong.clone()),
        ..trusting(&sshd)
    };
    let t0 = Instant::now();
    let err = connect(&sshd, &opts).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{msg}");
    assert!(msg.contains("authentication"), "{msg}");
    assert!(
        msg.contains(wrong.to_str().unwrap()),
        "names the key tried: {msg}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    // A missing explicit key file is named as such.
    let opts = SshOptions {
        identity_file: Some(PathBuf::from("/nonexistent/openpay_key")),
        ..trusting(&sshd)
    };
    let msg = connect(&sshd, &opts).unwrap_err().to_string();
    assert!(
        msg.contains("/nonexistent/openpay_key (no such file)"),
        "{msg}"
    );
}

#[test]
fn dead_port_is_unreachable_within_the_timeout() {
    let sshd = Sshd::start();
    let port = crate::common::free_port();
    let target = SshTarget::parse(&format!("{}@127.0.0.1:{port}", current_user())).unwrap();
    let opts = SshOptions {
        connect_timeout: Duration::from_secs(2),
        ..trusting(&sshd)
    };
    let t0 = Instant::now();
    let err = SshTransport::connect(&target, &opts).unwrap_err();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn silent_server_is_unreachable_at_the_connect_timeout() {
    // Accepts TCP but never speaks SSH: the handshake must not hang.
    let sshd = Sshd::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = SshTarget::parse(&format!("{}@127.0.0.1:{port}", current_user())).unwrap();
    let opts = SshOptions {
        connect_timeout: Duration::from_millis(1500),
        ..trusting(&sshd)
    };
    let t0 = Instant::now();
    let err = SshTransport::connect(&target, &opts).unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("timeout"), "{err}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(3000),
        "took {took:?}"
    );
    drop(listener);
}

#[test]
fn ssh_config_alias_resolves_host_port_user_and_key() {
    let sshd = Sshd::start();
    let cfg = sshd.dir.path().join("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Host other\n  HostName 192.0.2.1\n\nHost ingest-*\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n\nHost *\n  Port 1\n  User nobody\n",
            sshd.port,
            current_user(),
            sshd.user_key.display()
        ),
    )
    .unwrap();
    let opts = SshOptions {
        identity_file: None,
        ssh_config: Some(cfg),
        ..trusting(&sshd)
    };
    let t = SshTransport::connect(&SshTarget::parse("ingest-test").unwrap(), &opts)
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(
        t.label(),
        format!("{}@127.0.0.1:{}", current_user(), sshd.port)
    );
    assert_eq!(t.exec("echo via-alias", T).unwrap().stdout, "via-alias\n");
}

#[test]
fn a_hung_command_times_out_alone_while_others_finish() {
    let sshd = Sshd::start();
    let t = std::sync::Arc::new(connect(&sshd, &trusting(&sshd)).unwrap());
    let slow = {
        let t = t.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            (t.exec("sleep 6", Duration::from_secs(3)), t0.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let quick = t.exec("echo quick", T).unwrap();
    assert_eq!(quick.stdout, "quick\n");
    // Blocked behind the slow one, it would take the slow one's 3 s.
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "blocked behind the slow one: {:?}",
        t0.elapsed()
    );
    let (res, took) = slow.join().unwrap();
    assert!(
        matches!(res, Err(TransportError::Timeout { .. })),
        "{res:?}"
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
    // The session is still usable afterwards.
    assert!(t.exec("true", T).unwrap().success());
}

#[test]
fn many_parallel_probes_share_one_session() {
    // More than sshd's MaxSessions (10) at once: the transport queues.
    let sshd = Sshd::start();
    let t = std::sync::Arc::new(connect(&sshd, &trusting(&sshd)).unwrap());
    let handles: Vec<_> = (0..24)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || t.exec(&format!("sleep 0.2; echo {i}"), T))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("probe {i}: {e}"));
        assert_eq!(out.stdout, format!("{i}\n"));
    }
    let logins = sshd.log().matches("Accepted publickey").count();
    assert_eq!(logins, 1, "one session for all probes: {}", sshd.log());
}
