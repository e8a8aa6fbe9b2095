//! The subset of OpenSSH's `ssh_config(5)` that decides where and as whom
//! we connect: `Host` blocks with `HostName`, `User`, `Port`,
//! `IdentityFile` and `ProxyJump`.
//!
//! People already describe their EC2 hosts in `~/.ssh/config` (an alias,
//! the ec2-user, the key from the console); `openpay doctor --host alias`
//! must reach the same machine `ssh alias` does. We parse the few keywords
//! that matter instead of pulling in a crate for the whole grammar, and we
//! keep OpenSSH's rules: blocks are read top to bottom, the first value
//! obtained for a keyword wins, `IdentityFile` accumulates, patterns take
//! `*`, `?` and `!negation`. `Include` reads other files in place (glob
//! patterns, `~`, relative paths under `~/.ssh`, inside a `Host` block only
//! for that block's hosts), as the common `Include config.d/*` layouts
//! need. Other keywords are ignored; `Match` blocks are skipped
//! (their conditions need more than the host name to evaluate).

use std::path::{Path, PathBuf};

use wildmatch::WildMatch;

/// A malformed line: names the file, the line and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// One `Host` (or `Match`) block in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// `None` for a `Match` block: never applies.
    patterns: Option<Vec<String>>,
    /// The patterns of the `Host` blocks that included this block's file
    /// (ssh's conditional inclusion): each must match too.
    within: Vec<Vec<String>>,
    settings: Vec<(Keyword, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    HostName,
    User,
    Port,
    IdentityFile,
    ProxyJump,
}

/// A parsed ssh_config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

/// What the config says for one host name as typed by the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Raw values in order; expand with [`expand_identity`].
    pub identity_files: Vec<String>,
    /// `[user@]host[:port]` to tunnel through (`none` already removed).
    pub proxy_jump: Option<String>,
}

/// OpenSSH's limit on nested `Include`s (it also stops include cycles).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Where `Include` finds files: `~` is `home`, relative paths are under
/// `ssh_dir` (`~/.ssh`, as for a user's config).
#[derive(Debug, Clone)]
pub struct IncludeRoots {
    pub home: PathBuf,
    pub ssh_dir: PathBuf,
}

impl IncludeRoots {
    fn user() -> Option<Self> {
        let home = dirs::home_dir()?;
        Some(Self {
            ssh_dir: home.join(".ssh"),
            home,
        })
    }

    /// The files one `Include` argument names (glob(7) patterns), in
    /// lexical order; a pattern that matches nothing names nothing.
    fn expand(&self, arg: &str) -> Result<Vec<PathBuf>, String> {
        let path = match arg.strip_prefix("~/") {
            Some(rest) => self.home.join(rest),
            None if Path::new(arg).is_absolute() => PathBuf::from(arg),
            None => self.ssh_dir.join(arg),
        };
        let pattern = path.to_string_lossy();
        let found = glob::glob(&pattern).map_err(|e| format!("Include {arg:?}: {e}"))?;
        Ok(found.flatten().filter(|p| p.is_file()).collect())
    }
}

impl SshConfig {
    /// Reads `path`; a missing file is an empty config (most laptops and
    /// CI runners have none), any other read error is reported.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, IncludeRoots::user().as_ref())
    }

    /// [`load`](Self::load) with explicit roots for `Include`.
    pub fn load_with(path: &Path, roots: Option<&IncludeRoots>) -> Result<Self, ConfigError> {
        let mut blocks = vec![global_block()];
        read_into(&mut blocks, path, roots, &[], 0)?;
        Ok(Self { blocks })
    }

    /// Parses the text of a config file; `origin` names it in errors.
    /// `Include` lines read files relative to the user's `~/.ssh`.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut blocks = vec![global_block()];
        parse_into(
            &mut blocks,
            text,
            origin,
            IncludeRoots::user().as_ref(),
            &[],
            0,
        )?;
        Ok(Self { blocks })
    }
}

/// Lines before the first Host/Match apply to every host.
fn global_block() -> Block {
    Block {
        patterns: Some(vec!["*".to_string()]),
        within: Vec::new(),
        settings: Vec::new(),
    }
}

/// Appends the blocks of the file at `path` (missing: nothing, as ssh).
fn read_into(
    blocks: &mut Vec<Block>,
    path: &Path,
    roots: Option<&IncludeRoots>,
    within: &[Vec<String>],
    depth: usize,
) -> Result<(), ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_into(
            blocks,
            &text,
            &path.display().to_string(),
            roots,
            within,
            depth,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ConfigError {
            path: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        }),
    }
}

fn parse_into(
    blocks: &mut Vec<Block>,
    text: &str,
    origin: &str,
    roots: Option<&IncludeRoots>,
    within: &[Vec<String>],
    depth: usize,
) -> Result<(), ConfigError> {
    let err = |line: usize, message: String| ConfigError {
        path: origin.to_string(),
        line,
        message,
    };
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let Some((key, args)) = split_line(raw).map_err(|m| err(lineno, m))? else {
            continue;
        };
        let key_lc = key.to_ascii_lowercase();
        match key_lc.as_str() {
            "host" => {
                if args.is_empty() {
                    return Err(err(lineno, "Host needs at least one pattern".into()));
                }
                blocks.push(Block {
                    patterns: Some(args),
                    within: within.to_vec(),
                    settings: Vec::new(),
                });
            }
            "match" => blocks.push(Block {
                patterns: None,
                within: within.to_vec(),
                settings: Vec::new(),
            }),
            "include" => {
                if args.is_empty() {
                    return Err(err(lineno, "Include needs at least one file".into()));
                }
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(err(
                        lineno,
                        format!("Include nested more than {MAX_INCLUDE_DEPTH} deep (a cycle?)"),
                    ));
                }
                let Some(roots) = roots else {
                    return Err(err(
                        lineno,
                        "Include needs a home directory to resolve it".into(),
                    ));
                };
                // The included lines live under the block that holds the
                // Include, and its Host blocks apply only to hosts that
                // block matches too; they end with the file, so the rest
                // of this one continues under the same block.
                let here = blocks.last().expect("global block").clone();
                let Some(patterns) = here.patterns.clone() else {
                    continue; // inside a Match block: never applies
                };
                let mut inner = here.within.clone();
                inner.push(patterns);
                let continue_here = || Block {
                    settings: Vec::new(),
                    ..here.clone()
                };
                for arg in &args {
                    for file in roots.expand(arg).map_err(|m| err(lineno, m))? {
                        blocks.push(continue_here());
                        read_into(blocks, &file, Some(roots), &inner, depth + 1)?;
                    }
                }
                blocks.push(continue_here());
            }
            "hostname" | "user" | "port" | "identityfile" | "proxyjump" => {
                let keyword = match key_lc.as_str() {
                    "hostname" => Keyword::HostName,
                    "user" => Keyword::User,
                    "port" => Keyword::Port,
                    "proxyjump" => Keyword::ProxyJump,
                    _ => Keyword::IdentityFile,
                };
                let [value] = args.as_slice() else {
                    return Err(err(lineno, format!("{key} takes exactly one value")));
                };
                if keyword == Keyword::Port && value.parse::<u16>().map_or(true, |p| p == 0) {
                    return Err(err(
                        lineno,
                        format!("Port {value:?} is not a port number (1-65535)"),
                    ));
                }
                let block = blocks.last_mut().expect("the global block is always there");
                block.settings.push((keyword, value.clone()));
            }
            _ => {
                tracing::trace!(keyword = %key, line = lineno, "ssh_config keyword ignored");
            }
        }
    }
    Ok(())
}

impl SshConfig {
    /// Collects the settings for `host` (the name the user typed), with
    /// OpenSSH's first-value-wins rule and accumulated identity files.
    pub fn resolve(&self, host: &str) -> HostConfig {
        let mut out = HostConfig::default();
        // First value wins, and `none` is a value (it switches jumping off).
        let mut jump_seen = false;
        for block in &self.blocks {
            let Some(patterns) = &block.patterns else {
                continue;
            };
            if !host_matches(patterns, host) || !block.within.iter().all(|p| host_matches(p, host))
            {
                continue;
            }
            for (keyword, value) in &block.settings {
                match keyword {
                    Keyword::HostName => {
                        out.hostname
                            .get_or_insert_with(|| value.replace("%h", host));
                    }
                    Keyword::User => {
                        out.user.get_or_insert_with(|| value.clone());
                    }
                    Keyword::Port => {
                        // Validated at parse time.
                        if out.port.is_none() {
                            out.port = value.parse().ok();
                        }
                    }
                    Keyword::IdentityFile => out.identity_files.push(value.clone()),
                    Keyword::ProxyJump => {
                        if !jump_seen {
                            jump_seen = true;
                            out.proxy_jump =
                                Some(value.clone()).filter(|v| !v.eq_ignore_ascii_case("none"));
                        }
                    }
                }
            }
        }
        out
    }
}

/// OpenSSH's Host matching: any positive pattern matches and no negated
/// one does. Host names compare case-insensitively.
fn host_matches(patterns: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let mut matched = false;
    for p in patterns {
        let (negated, pat) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p.as_str()),
        };
        if WildMatch::new(&pat.to_ascii_lowercase()).matches(&host) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// Splits `Keyword value...` / `Keyword=value`, honouring double quotes and
/// `#` comments. `Ok(None)` for blank and comment lines.
fn split_line(raw: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let key_end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let key = line[..key_end].to_string();
    let mut rest = line[key_end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        let mut arg = String::new();
        if c == '"' {
            chars.next();
            let mut closed = false;
            for c in chars.by_ref() {
                if c == '"' {
                    closed = true;
                    break;
                }
                arg.push(c);
            }
            if !closed {
                return Err(format!("unbalanced quote in {key} line"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                arg.push(c);
                chars.next();
            }
        }
        args.push(arg);
    }
    Ok(Some((key, args)))
}

/// Expands an IdentityFile value the way ssh does for the tokens that make
/// sense here: `~` and `%d` (home), `%u` (local user), `%r` (remote user),
/// `%h` (host name), `%%`.
pub fn expand_identity(
    value: &str,
    home: &Path,
    local_user: &str,
    user: &str,
    host: &str,
) -> PathBuf {
    let mut s = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('d') => s.push_str(&home.to_string_lossy()),
                Some('u') => s.push_str(local_user),
                Some('r') => s.push_str(user),
                Some('h') => s.push_str(host),
                Some('%') => s.push('%'),
                Some(other) => {
                    s.push('%');
                    s.push(other);
                }
                None => s.push('%'),
            }
        } else {
            s.push(c);
        }
    }
    if s == "~" {
        home.to_path_buf()
    } else if let Some(rest) = s.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
# global defaults come first in many configs
IdentityFile ~/.ssh/global_key

Host bastion
    HostName 203.0.113.10
    User admin

Host ingest-* !ingest-legacy
    HostName %h.internal.example
    User ec2-user
    Port 2222
    IdentityFile ~/.ssh/ingest.pem

Host ingest-prod
    User someone-else
    IdentityFile=/keys/prod.pem

Host "quoted one"
    Port 2200

Match host *.example exec "true"
    User match-user

Host *
    User fallback
    Port 22
"#;

    fn cfg() -> SshConfig {
        SshConfig::parse(SAMPLE, "test").unwrap()
    }

    #[test]
    fn first_value_wins_and_identity_files_accumulate() {
        let h = cfg().resolve("ingest-prod");
        assert_eq!(h.hostname.as_deref(), Some("ingest-prod.internal.example"));
        assert_eq!(h.user.as_deref(), Some("ec2-user"), "earlier block wins");
        assert_eq!(h.port, Some(2222));
        assert_eq!(
            h.identity_files,
            vec!["~/.ssh/global_key", "~/.ssh/ingest.pem", "/keys/prod.pem"]
        );
    }

    #[test]
    fn negated_pattern_excludes_a_host() {
        let h = cfg().resolve("ingest-legacy");
        assert_eq!(h.hostname, None);
        assert_eq!(h.user.as_deref(), Some("fallback"));
        assert_eq!(h.port, Some(22));
    }

    #[test]
    fn exact_alias_and_catch_all() {
        let h = cfg().resolve("BASTION");
        assert_eq!(h.hostname.as_deref(), Some("203.0.113.10"));
        assert_eq!(h.user.as_deref(), Some("admin"));
        assert_eq!(h.port, Some(22));
        let other = cfg().resolve("10.0.0.5");
        assert_eq!(other.hostname, None);
        assert_eq!(other.user.as_deref(), Some("fallback"));
    }

    #[test]
    fn match_blocks_never_apply() {
        let h = cfg().resolve("x.example");
        assert_eq!(h.user.as_deref(), Some("fallback"));
    }

    #[test]
    fn quoted_patterns_and_equals_syntax() {
        let h = cfg().resolve("quoted one");
        assert_eq!(h.port, Some(2200));
    }

    #[test]
    fn bad_port_names_file_and_line() {
        let e = SshConfig::parse("Host a\n  Port ssh\n", "/home/u/.ssh/config").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("/home/u/.ssh/config:2:"), "{e}");
        assert!(e.message.contains("Port \"ssh\""), "{e}");
        let e = SshConfig::parse("Host\n", "c").unwrap_err();
        assert!(e.message.contains("at least one pattern"), "{e}");
        let e = SshConfig::parse("Host a\n User \"x\n", "c").unwrap_err();
        assert!(e.message.contains("unbalanced quote"), "{e}");
    }

    #[test]
    fn missing_file_is_empty() {
        let c = SshConfig::load(Path::new("/nonexistent/openpay/ssh_config")).unwrap();
        assert_eq!(c.resolve("anything"), HostConfig::default());
    }

    /// A home with `~/.ssh/config` and the given files under `~/.ssh`.
    fn home_with(files: &[(&str, &str)]) -> (tempfile::TempDir, IncludeRoots) {
        let home = tempfile::tempdir().unwrap();
        let ssh_dir = home.path().join(".ssh");
        for (rel, text) in files {
            let p = ssh_dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let roots = IncludeRoots {
            home: home.path().to_path_buf(),
            ssh_dir,
        };
        (home, roots)
    }

    #[test]
    fn include_reads_globbed_files_in_place_in_lexical_order() {
        let (_home, roots) = home_with(&[
            ("config", "Include config.d/*\nHost *\n  User fallback\n"),
            ("config.d/20-late", "Host box\n  User second\n"),
            (
                "config.d/10-early",
                "Host box\n  HostName 10.0.0.1\n  User first\n",
            ),
        ]);
        let c = SshConfig::load_with(&roots.ssh_dir.join("config"), Some(&roots)).unwrap();
        let b = c.resolve("box");
        assert_eq!(b.hostname.as_deref(), Some("10.0.0.1"));
        assert_eq!(b.user.as_deref(), Some("first"), "10-early is read first");
        assert_eq!(c.resolve("other").user.as_deref(), Some("fallback"));
    }

    #[test]
    fn include_inside_a_host_block_applies_to_that_block_only() {
        let (home, roots) = home_with(&[
            (
                "config",
                "Host bastion\n  Include ~/.ssh/bastion.conf\n  Port 2200\nHost *\n  User all\n",
            ),
            (
                "bastion.conf",
                "User jump\nHost elsewhere bastion\n  IdentityFile ~/.ssh/inner\n",
            ),
        ]);
        let _ = home;
        let c = SshConfig::load_with(&roots.ssh_dir.join("config"), Some(&roots)).unwrap();
        let b = c.resolve("bastion");
        assert_eq!(b.user.as_deref(), Some("jump"));
        assert_eq!(
            b.port,
            Some(2200),
            "the Host block goes on after the Include"
        );
        assert_eq!(b.identity_files, vec!["~/.ssh/inner".to_string()]);
        let e = c.resolve("elsewhere");
        assert_eq!(
            e.user.as_deref(),
            Some("all"),
            "the included file was read for bastion only"
        );
        assert!(e.identity_files.is_empty(), "{e:?}");
    }

    #[test]
    fn include_errors_name_the_file_and_missing_files_are_skipped() {
        let (_home, roots) = home_with(&[
            ("config", "Include nothing-here.conf\nInclude loop.conf\n"),
            ("loop.conf", "Include loop.conf\n"),
        ]);
        let e = SshConfig::load_with(&roots.ssh_dir.join("config"), Some(&roots)).unwrap_err();
        assert!(e.path.ends_with("loop.conf"), "{e}");
        assert!(e.message.contains("nested more than 16"), "{e}");

        let (_home, roots) = home_with(&[("config", "Host a\n  Include conf.d/***\n")]);
        let e = SshConfig::load_with(&roots.ssh_dir.join("config"), Some(&roots)).unwrap_err();
        assert!(e.message.contains("Include \"conf.d/***\""), "{e}");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn proxy_jump_first_value_wins_and_none_switches_it_off() {
        let c = SshConfig::parse(
            "Host direct\n  ProxyJump none\nHost *.internal\n  ProxyJump ec2-user@bastion:2222\nHost *\n  ProxyJump other\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.resolve("direct").proxy_jump, None);
        assert_eq!(
            c.resolve("db.internal").proxy_jump.as_deref(),
            Some("ec2-user@bastion:2222")
        );
        assert_eq!(c.resolve("x").proxy_jump.as_deref(), Some("other"));
    }

    #[test]
    fn identity_tokens_expand() {
        let home = Path::new("/home/me");
        assert_eq!(
            expand_identity("~/.ssh/id_%r@%h", home, "me", "ec2-user", "h1"),
            PathBuf::from("/home/me/.ssh/id_ec2-user@h1")
        );
        assert_eq!(
            expand_identity("%d/k_%u_100%%", home, "me", "r", "h"),
            PathBuf::from("/home/me/k_me_100%")
        );
        assert_eq!(
            expand_identity("/abs/key", home, "me", "r", "h"),
            PathBuf::from("/abs/key")
        );
    }
}
