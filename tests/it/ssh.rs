//! The SSH transport against a real sshd on loopback: commands, files,
//! host key policy, authentication failures, timeouts, ssh_config aliases.
//! No test reads the real ~/.ssh: every path is in a temp dir.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use openpay::doctor::transport::ssh::{SshOptions, SshTarget, SshTransport};
use openpay::doctor::transport::{Transport, TransportError};

use crate::common::sshd::{Sshd, current_user, keygen, stand_in_tools};

const T: Duration = Duration::from_secs(10);

/// Options that trust `sshd` and never touch the real ~/.ssh.
fn trusting(sshd: &Sshd) -> SshOptions {
    SshOptions {
        identity_file: Some(sshd.user_key.clone()),
        known_hosts: Some(sshd.trusting_known_hosts()),
        global_known_hosts: sshd.dir.path().join("no_global_known_hosts"),
        ssh_config: Some(sshd.dir.path().join("no_ssh_config")),
        ..SshOptions::default()
    }
}

/// Like [`trusting`], but with `known_hosts` as the known_hosts file.
fn with_known_hosts(sshd: &Sshd, known_hosts: &std::path::Path, accept_new: bool) -> SshOptions {
    SshOptions {
        known_hosts: Some(known_hosts.to_path_buf()),
        accept_new_host_key: accept_new,
        ..trusting(sshd)
    }
}

fn connect(sshd: &Sshd, opts: &SshOptions) -> Result<SshTransport, TransportError> {
    SshTransport::connect(&SshTarget::parse(&sshd.target()).unwrap(), opts)
}

/// Runs `n` commands at once on one transport, as the doctor's runner
/// does, and checks each one's stdout.
fn probe_in_parallel(
    t: &std::sync::Arc<SshTransport>,
    n: usize,
    command: impl Fn(usize) -> String,
    stdout: impl Fn(usize) -> String,
) {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (t, cmd) = (t.clone(), command(i));
            std::thread::spawn(move || t.exec(&cmd, T))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("probe {i}: {e}"));
        assert_eq!(out.stdout, stdout(i));
    }
}

/// An ssh_config `Host` block that reaches `sshd` as the current user with
/// its key, plus `extra` lines.
fn host_block(sshd: &Sshd, patterns: &str, extra: &str) -> String {
    format!(
        "Host {patterns}\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n{extra}",
        sshd.port,
        current_user(),
        sshd.user_key.display()
    )
}

/// Options that read `ssh_config` (no --identity-file), trusting `sshd`.
fn with_ssh_config(sshd: &Sshd, ssh_config: PathBuf) -> SshOptions {
    SshOptions {
        identity_file: None,
        ssh_config: Some(ssh_config),
        ..trusting(sshd)
    }
}

/// Connects to `alias` as the config says, or fails the test with sshd's log.
fn connect_alias(sshd: &Sshd, alias: &str, opts: &SshOptions) -> SshTransport {
    SshTransport::connect(&SshTarget::parse(alias).unwrap(), opts)
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()))
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
    let opts = with_known_hosts(&sshd, &kh, false);
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
fn a_key_in_the_global_known_hosts_file_is_trusted_and_never_written() {
    let sshd = Sshd::start();
    let user_kh = sshd.dir.path().join("user_known_hosts");
    let opts = SshOptions {
        global_known_hosts: sshd.trusting_known_hosts(),
        ..with_known_hosts(&sshd, &user_kh, false)
    };
    let t = connect(&sshd, &opts).unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert!(t.exec("true", T).unwrap().success());
    assert!(!user_kh.exists(), "nothing copied into the user's file");

    // A different key on record in the global file is a changed key.
    let other_key = sshd.dir.path().join("not_the_host_key");
    keygen(&other_key);
    let other_pub = std::fs::read_to_string(other_key.with_extension("pub")).unwrap();
    let other = sshd.dir.path().join("other_known_hosts");
    std::fs::write(
        &other,
        format!("[127.0.0.1]:{} {}\n", sshd.port, other_pub.trim()),
    )
    .unwrap();
    let opts = SshOptions {
        global_known_hosts: other,
        accept_new_host_key: true,
        ..with_known_hosts(&sshd, &user_kh, true)
    };
    match connect(&sshd, &opts) {
        Err(TransportError::HostKey { problem, .. }) => {
            assert!(problem.contains("CHANGED"), "{problem}")
        }
        other => panic!("a changed key must be refused, got {:?}", other.err()),
    }
}

#[test]
fn accept_new_records_the_key_and_the_next_connect_needs_no_flag() {
    let sshd = Sshd::start();
    let kh = sshd.dir.path().join("sub/known_hosts");
    let opts = with_known_hosts(&sshd, &kh, true);
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
    let opts = with_known_hosts(&sshd, &kh, false);
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
        let opts = with_known_hosts(&sshd, &kh, accept);
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
    // A refused key ends the attempt at once; waiting out a 60 s connect
    // timeout instead would take 60 s, far above the bound below.
    let opts = SshOptions {
        identity_file: Some(wrong.clone()),
        connect_timeout: Duration::from_secs(60),
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
        t0.elapsed() < Duration::from_secs(30),
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

/// Connects to a loopback `port` (trusting `sshd`'s options otherwise) and
/// returns the error and how long it took to come.
fn connect_port(sshd: &Sshd, port: u16, timeout: Duration) -> (TransportError, Duration) {
    let target = SshTarget::parse(&format!("{}@127.0.0.1:{port}", current_user())).unwrap();
    let opts = SshOptions {
        connect_timeout: timeout,
        ..trusting(sshd)
    };
    let t0 = Instant::now();
    let err = SshTransport::connect(&target, &opts).unwrap_err();
    (err, t0.elapsed())
}

#[test]
fn dead_port_is_unreachable_within_the_timeout() {
    let sshd = Sshd::start();
    let port = crate::common::free_port();
    // Refused at once: far below the 60 s timeout even on a busy machine.
    let (err, took) = connect_port(&sshd, port, Duration::from_secs(60));
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[test]
fn silent_server_is_unreachable_at_the_connect_timeout() {
    // Accepts TCP but never speaks SSH: the handshake must not hang.
    let sshd = Sshd::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (err, took) = connect_port(&sshd, port, Duration::from_millis(1500));
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains("SSH handshake did not finish"),
        "{err}"
    );
    // Never early (a clock cannot run short); the upper bound only has to
    // tell "gave up at the timeout" from "hung".
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(30),
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
            "Host other\n  HostName 192.0.2.1\n\n{}\nHost *\n  Port 1\n  User nobody\n",
            host_block(&sshd, "ingest-*", "")
        ),
    )
    .unwrap();
    let t = connect_alias(&sshd, "ingest-test", &with_ssh_config(&sshd, cfg));
    assert_eq!(
        t.label(),
        format!("{}@127.0.0.1:{}", current_user(), sshd.port)
    );
    assert_eq!(t.exec("echo via-alias", T).unwrap().stdout, "via-alias\n");
}

#[test]
fn ssh_config_include_of_a_config_d_directory_is_followed() {
    let sshd = Sshd::start();
    let dir = sshd.dir.path().join("config.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("10-ingest"), host_block(&sshd, "ingest-*", "")).unwrap();
    std::fs::write(dir.join("README"), "Host ingest-*\n  Port 1\n").unwrap();
    let cfg = sshd.dir.path().join("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Include {}/[0-9]*\n\nHost *\n  Port 1\n  User nobody\n",
            dir.display()
        ),
    )
    .unwrap();
    let t = connect_alias(&sshd, "ingest-test", &with_ssh_config(&sshd, cfg));
    assert_eq!(
        t.label(),
        format!("{}@127.0.0.1:{}", current_user(), sshd.port),
        "the included file decided, before the later Host *"
    );
    assert_eq!(t.exec("echo included", T).unwrap().stdout, "included\n");
}

/// An ssh_config where `target` is reached through `bastion` (both this
/// sshd: it forwards to itself).
fn jump_config(sshd: &Sshd, jump: &str) -> PathBuf {
    let cfg = sshd.dir.path().join("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "{}{}",
            host_block(sshd, "target", &format!("  ProxyJump {jump}\n")),
            host_block(sshd, "bastion", "")
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn proxy_jump_reaches_the_host_through_a_bastion() {
    let sshd = Sshd::start();
    let opts = with_ssh_config(&sshd, jump_config(&sshd, "bastion"));
    let t = connect_alias(&sshd, "target", &opts);
    // Several probes at once through the tunnel, as the runner does.
    let t = std::sync::Arc::new(t);
    probe_in_parallel(&t, 6, |i| format!("echo hop-{i}"), |i| format!("hop-{i}\n"));
    let big = t.exec("head -c 300000 /dev/zero | tr '\\0' x", T).unwrap();
    assert_eq!(big.stdout.len(), 300_000, "bulk output crosses the tunnel");
    let log = sshd.log();
    assert_eq!(
        log.matches("Accepted publickey").count(),
        2,
        "one login on the bastion, one on the target through it: {log}"
    );
    drop(t);
}

#[test]
fn proxy_jump_errors_are_one_clear_line() {
    let sshd = Sshd::start();
    let opts = with_ssh_config(&sshd, jump_config(&sshd, "a,b"));
    let e = SshTransport::connect(&SshTarget::parse("target").unwrap(), &opts).unwrap_err();
    assert!(e.to_string().contains("only one bastion"), "{e}");

    // A bastion whose key is not trusted stops the whole connection
    // before anything is sent to the target.
    let opts = SshOptions {
        identity_file: None,
        ssh_config: Some(jump_config(&sshd, "bastion")),
        ..with_known_hosts(&sshd, &sshd.dir.path().join("empty_known_hosts"), false)
    };
    let e = SshTransport::connect(&SshTarget::parse("target").unwrap(), &opts).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("through bastion bastion"), "{msg}");
    assert!(msg.contains("is not in"), "{msg}");
    assert_eq!(sshd.log().matches("Accepted publickey").count(), 0);
}

#[test]
fn a_hung_command_times_out_alone_while_others_finish() {
    let sshd = Sshd::start();
    let t = std::sync::Arc::new(connect(&sshd, &trusting(&sshd)).unwrap());
    let slow = {
        let t = t.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            (t.exec("sleep 60", Duration::from_secs(5)), t0.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let quick = t.exec("echo quick", T).unwrap();
    assert_eq!(quick.stdout, "quick\n");
    // Blocked behind the slow one, it could only answer after the slow
    // one's 5 s timeout: the slow one must still be running now.
    assert!(
        !slow.is_finished(),
        "the quick command waited for the slow one"
    );
    let (res, took) = slow.join().unwrap();
    assert!(
        matches!(res, Err(TransportError::Timeout { .. })),
        "{res:?}"
    );
    // bounded by its timeout, not by the 60 s command
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // A command that never stops talking times out too.
    let t0 = Instant::now();
    let res = t.exec("while :; do echo tick; done", Duration::from_secs(1));
    assert!(
        matches!(res, Err(TransportError::Timeout { .. })),
        "{res:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
    // The session is still usable afterwards.
    assert!(t.exec("true", T).unwrap().success());
}

#[test]
fn many_parallel_probes_share_one_session() {
    // More than sshd's MaxSessions (10) at once: the transport queues.
    let sshd = Sshd::start();
    let t = std::sync::Arc::new(connect(&sshd, &trusting(&sshd)).unwrap());
    probe_in_parallel(
        &t,
        24,
        |i| format!("sleep 0.2; echo {i}"),
        |i| format!("{i}\n"),
    );
    let logins = sshd.log().matches("Accepted publickey").count();
    assert_eq!(logins, 1, "one session for all probes: {}", sshd.log());
}

// ---- `openpay doctor --host` end to end, against the real sshd ----------

/// A HOME for the openpay process whose ~/.ssh trusts `sshd` (or nothing).
fn fake_home(sshd: &Sshd, trust: bool) -> PathBuf {
    let home = sshd
        .dir
        .path()
        .join(if trust { "home" } else { "home-empty" });
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    if trust {
        std::fs::write(
            home.join(".ssh/known_hosts"),
            format!("{}\n", sshd.known_hosts_line()),
        )
        .unwrap();
    }
    home
}

/// The host-scope results of a JSON report, without what legitimately
/// differs between transports (durations).
fn host_checks(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["hosts"][0]["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no host checks in {report}"))
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.as_object_mut().unwrap().remove("duration_ms");
            c
        })
        .collect()
}

/// `openpay doctor --offline --identity-file KEY --host H...` with HOME
/// at `home` (so ~/.ssh is the test's), plus `args`.
fn doctor_ssh(
    sshd: &Sshd,
    home: &std::path::Path,
    hosts: &[&str],
    args: &[&str],
) -> std::process::Command {
    let mut cmd = crate::common::openpay();
    cmd.args(["doctor", "--offline", "--identity-file"])
        .arg(&sshd.user_key)
        .env("HOME", home);
    for h in hosts {
        cmd.args(["--host", h]);
    }
    cmd.args(args);
    cmd
}

fn run_json(cmd: &mut std::process::Command) -> (i32, serde_json::Value, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (out.status.code().unwrap(), json, stderr)
}

#[test]
fn doctor_over_ssh_gives_the_same_report_as_local() {
    let work = tempfile::tempdir().unwrap();
    // buildx 0.12.1: below the 0.17.0 minimum, so one check fails
    let bin = stand_in_tools(work.path(), "0.12.1");
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let sshd = Sshd::start_with_env(&[("PATH", &path)]);
    let home = fake_home(&sshd, true);
    let host_ids = [
        "host.cloud-init",
        "host.user-data-log",
        "host.git",
        "host.docker",
        "host.compose",
        "host.buildx",
    ];
    let only: Vec<String> = host_ids
        .iter()
        .flat_map(|id| ["--only".to_string(), id.to_string()])
        .collect();

    let (local_rc, local, _) = run_json(
        crate::common::openpay()
            .args(["doctor", "--offline", "--format", "json"])
            .args(&only)
            .env("PATH", &path)
            .env("HOME", &home)
            .current_dir(work.path()),
    );
    let (ssh_rc, remote, stderr) = run_json(
        doctor_ssh(&sshd, &home, &[&sshd.target()], &["--format", "json"])
            .args(&only)
            .current_dir(work.path()),
    );
    assert_eq!(
        remote["hosts"][0]["label"],
        format!("{}@127.0.0.1:{}", current_user(), sshd.port),
        "{stderr}"
    );
    assert_eq!(
        remote["hosts"][0]["reachable"],
        true,
        "{remote}\n{}",
        sshd.log()
    );
    let (l, r) = (host_checks(&local), host_checks(&remote));
    assert_eq!(l.len(), host_ids.len(), "{local}");
    assert_eq!(l, r, "local and SSH reports differ");
    assert_eq!(local_rc, ssh_rc);
    // The stand-ins decided, not whatever this machine has installed.
    let status = |id: &str| {
        r.iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status("host.cloud-init"), "pass", "{remote}");
    assert_eq!(status("host.git"), "pass", "{remote}");
    assert_eq!(status("host.compose"), "pass", "{remote}");
    assert_eq!(status("host.buildx"), "fail", "0.12.1 < 0.17.0: {remote}");
    assert_eq!(ssh_rc, 1, "a required check failed: {remote}");
    let buildx = r.iter().find(|c| c["id"] == "host.buildx").unwrap();
    assert!(
        buildx["summary"].as_str().unwrap().contains("0.12.1"),
        "{buildx}"
    );
}

#[test]
fn doctor_refuses_an_unknown_host_key_with_exit_3() {
    let sshd = Sshd::start();
    let home = fake_home(&sshd, false);
    let out = doctor_ssh(&sshd, &home, &[&sshd.target()], &["--only", "host.git"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains(&openssh_fingerprint(&sshd)), "{stdout}");
    assert!(stdout.contains("--accept-new-host-key"), "{stdout}");
    assert!(!home.join(".ssh/known_hosts").exists());
    assert!(
        !stdout.contains("host.git"),
        "no check ran on a refused host: {stdout}"
    );

    // With the flag the key is recorded and the checks run.
    let flags = [
        "--only",
        "host.git",
        "--accept-new-host-key",
        "--format",
        "json",
    ];
    let out = doctor_ssh(&sshd, &home, &[&sshd.target()], &flags)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["hosts"][0]["reachable"], true, "{report}");
    assert_eq!(report["hosts"][0]["checks"][0]["id"], "host.git");
    let recorded = std::fs::read_to_string(home.join(".ssh/known_hosts")).unwrap();
    assert_eq!(recorded.trim(), sshd.known_hosts_line());
}

#[test]
fn doctor_reports_a_dead_host_once_and_still_checks_the_live_one() {
    let sshd = Sshd::start();
    let home = fake_home(&sshd, true);
    let dead = format!(
        "{}@127.0.0.1:{}",
        current_user(),
        crate::common::free_port()
    );
    // (how fast a dead port is given up is dead_port_is_unreachable_within_the_timeout)
    let (rc, report, _) = run_json(&mut doctor_ssh(
        &sshd,
        &home,
        &[&dead, &sshd.target()],
        &["--only", "host.git", "--format", "json"],
    ));
    assert_eq!(rc, 3, "an unreachable host is exit 3: {report}");
    let hosts = report["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2, "{report}");
    let dead_report = hosts.iter().find(|h| h["reachable"] == false).unwrap();
    assert!(
        dead_report["checks"]
            .as_array()
            .is_none_or(|c| c.is_empty()),
        "{dead_report}"
    );
    assert!(
        dead_report["error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{dead_report}"
    );
    let live = hosts.iter().find(|h| h["reachable"] == true).unwrap();
    assert_eq!(live["checks"][0]["id"], "host.git", "{live}");
}

#[test]
fn doctor_rejects_a_malformed_host_with_exit_2() {
    let out = crate::common::openpay()
        .args(["doctor", "--offline", "--host", "ec2-user@10.0.0.1:ssh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid --host \"ec2-user@10.0.0.1:ssh\""),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

/// `openpay doctor --host` with no `--identity-file`, HOME at `home` and
/// SSH_AUTH_SOCK as given (or unset).
fn doctor_without_key_flag(
    sshd: &Sshd,
    home: &std::path::Path,
    agent: Option<&std::path::Path>,
) -> serde_json::Value {
    let mut cmd = crate::common::openpay();
    cmd.args([
        "doctor",
        "--offline",
        "--only",
        "host.git",
        "--format",
        "json",
    ])
    .args(["--host", &sshd.target()])
    .env("HOME", home)
    .env_remove("SSH_AUTH_SOCK");
    if let Some(sock) = agent {
        cmd.env("SSH_AUTH_SOCK", sock);
    }
    run_json(&mut cmd).1
}

#[test]
fn without_identity_file_the_agent_then_default_keys_are_used() {
    let sshd = Sshd::start();
    let home = fake_home(&sshd, true);

    // No key anywhere: one clear "no key" result, not a hang.
    let report = doctor_without_key_flag(&sshd, &home, None);
    assert_eq!(report["hosts"][0]["reachable"], false, "{report}");
    assert!(
        report["hosts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no SSH key found"),
        "{report}"
    );

    // A real ssh-agent holding the key.
    let sock = sshd.dir.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent (openssh-client) must be installed");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "ssh-agent did not create {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = std::process::Command::new("ssh-add")
        .arg(&sshd.user_key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let report = doctor_without_key_flag(&sshd, &home, Some(&sock));
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(
        report["hosts"][0]["reachable"], true,
        "agent auth: {report}"
    );

    // ~/.ssh/id_ed25519, the first default key.
    std::fs::copy(&sshd.user_key, home.join(".ssh/id_ed25519")).unwrap();
    let report = doctor_without_key_flag(&sshd, &home, None);
    assert_eq!(
        report["hosts"][0]["reachable"], true,
        "default key: {report}"
    );
}
