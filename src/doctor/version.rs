//! Lenient version parsing for tool output.
//!
//! Real tools print versions with prefixes and distro suffixes:
//! `v2.24.5-desktop.1`, `25.0.8`, `24.0.7-0ubuntu2~22.04.1`, `2.40.1`,
//! `v0.17.1 257e...`. We take the first `MAJOR.MINOR[.PATCH]` that appears
//! (optionally after a `v`) and ignore the rest, so a suffix never turns a
//! good tool into a "cannot parse" failure.

use std::sync::OnceLock;

use regex::Regex;

/// The first `[v]MAJOR.MINOR[.PATCH]` found in `text`, as a semver version
/// (a missing patch is 0; pre-release and build suffixes are dropped).
pub fn find_version(text: &str) -> Option<semver::Version> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"(?:^|[^0-9A-Za-z.])v?(\d{1,6})\.(\d{1,6})(?:\.(\d{1,9}))?").unwrap()
    });
    let caps = re.captures(text)?;
    let n = |i: usize| caps.get(i).map_or(Some(0), |m| m.as_str().parse().ok());
    Some(semver::Version::new(n(1)?, n(2)?, n(3)?))
}

/// Parses a configured minimum such as `0.17.0` or `v0.17`.
pub fn parse_minimum(text: &str) -> Option<semver::Version> {
    find_version(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> String {
        find_version(s).map(|v| v.to_string()).unwrap_or_default()
    }

    #[test]
    fn lenient_forms() {
        assert_eq!(v("Docker Compose version v2.24.5-desktop.1"), "2.24.5");
        assert_eq!(v("Docker version 25.0.8, build 0bab007"), "25.0.8");
        assert_eq!(
            v("Docker version 24.0.7, build 24.0.7-0ubuntu2~22.04.1"),
            "24.0.7"
        );
        assert_eq!(v("build 24.0.7-0ubuntu2~22.04.1"), "24.0.7");
        assert_eq!(v("git version 2.40.1"), "2.40.1");
        assert_eq!(
            v("github.com/docker/buildx v0.17.1 257815a6fb95ed3cb8c2ecb8fe7ba9ba8d6c4a4e"),
            "0.17.1"
        );
        assert_eq!(v("docker-compose version 1.29.2, build 5becea4c"), "1.29.2");
        assert_eq!(v("v5.0"), "5.0.0");
        assert_eq!(v("no digits here"), "");
    }

    #[test]
    fn minimum_compares() {
        let min = parse_minimum("0.17.0").unwrap();
        assert!(find_version("v0.16.2").unwrap() < min);
        assert!(find_version("v0.17.0-desktop.1").unwrap() >= min);
        assert!(find_version("v0.29.1").unwrap() >= min);
    }
}
