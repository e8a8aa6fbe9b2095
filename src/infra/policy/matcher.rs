//! Wildcard matching for actions and ARNs.
//!
//! IAM wildcards are `*` (any run of characters, possibly empty) and `?`
//! (exactly one character). Actions compare case-insensitively; resource
//! ARNs case-sensitively, and in an ARN a wildcard in the partition,
//! service, region or account segment stays inside that segment while the
//! resource part may span `/` and `:` (so `arn:aws:s3:::bucket*` also
//! covers the objects of every bucket whose name starts with `bucket`).
//!
//! One engine serves two questions: does a pattern match a concrete value
//! ([`glob_match`]), and does a pattern cover every value another pattern
//! can match ([`glob_covers`], used by drift to see that a live grant is a
//! restatement of a declared one).

/// One token of a pattern or of the text being matched.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    One,
    Any,
}

fn tokens(s: &str, wildcards: bool, fold: bool) -> Vec<Tok> {
    s.chars()
        .map(|c| match c {
            '*' if wildcards => Tok::Any,
            '?' if wildcards => Tok::One,
            c if fold => Tok::Lit(c.to_ascii_lowercase()),
            c => Tok::Lit(c),
        })
        .collect()
}

/// Dynamic-programming match of `pat` over `text`, where `text` may itself
/// hold wildcards: a text `*` can only be absorbed by a pattern `*`, a text
/// `?` by a pattern `?` or `*`. With a wildcard-free text this is plain
/// glob matching.
fn covers_tokens(pat: &[Tok], text: &[Tok]) -> bool {
    let (n, m) = (pat.len(), text.len());
    // dp[j] = pat[..i] covers text[..j]
    let mut dp = vec![false; m + 1];
    dp[0] = true;
    for i in 1..=n {
        let mut next = vec![false; m + 1];
        match pat[i - 1] {
            Tok::Any => {
                // `*` absorbs any prefix extension of what came before.
                let mut seen = false;
                for j in 0..=m {
                    seen |= dp[j];
                    next[j] = seen;
                }
            }
            Tok::One => {
                for j in 1..=m {
                    next[j] = dp[j - 1] && text[j - 1] != Tok::Any;
                }
            }
            Tok::Lit(c) => {
                for j in 1..=m {
                    next[j] = dp[j - 1] && text[j - 1] == Tok::Lit(c);
                }
            }
        }
        dp = next;
    }
    dp[m]
}

/// Does `pattern` match the concrete `text`? `case_insensitive` folds ASCII
/// case (actions); ARNs pass `false`.
pub fn glob_match(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    covers_tokens(
        &tokens(pattern, true, case_insensitive),
        &tokens(text, false, case_insensitive),
    )
}

/// Does `pattern` match every string that `sub` (itself a pattern) can
/// match? Conservative: `false` means "not provably".
pub fn glob_covers(pattern: &str, sub: &str, case_insensitive: bool) -> bool {
    covers_tokens(
        &tokens(pattern, true, case_insensitive),
        &tokens(sub, true, case_insensitive),
    )
}

/// Does the action pattern (`s3:Put*`, `*`) match the action? Case-insensitive.
pub(crate) fn action_matches(pattern: &str, action: &str) -> bool {
    glob_match(pattern, action, true)
}

/// Does an action pattern cover another action pattern?
pub(crate) fn action_covers(pattern: &str, sub: &str) -> bool {
    glob_covers(pattern, sub, true)
}

/// Does the resource pattern match the resource ARN? Case-sensitive,
/// segment-aware for ARNs (see the module doc).
pub(crate) fn resource_matches(pattern: &str, resource: &str) -> bool {
    arn_aware(pattern, resource, false)
}

/// Does a resource pattern cover another resource pattern?
pub(crate) fn resource_covers(pattern: &str, sub: &str) -> bool {
    arn_aware(pattern, sub, true)
}

fn arn_aware(pattern: &str, text: &str, text_is_pattern: bool) -> bool {
    let one = |p: &str, t: &str| {
        if text_is_pattern {
            glob_covers(p, t, false)
        } else {
            glob_match(p, t, false)
        }
    };
    if pattern == "*" {
        return true;
    }
    if pattern.starts_with("arn:") && text.starts_with("arn:") {
        let p: Vec<&str> = pattern.splitn(6, ':').collect();
        let t: Vec<&str> = text.splitn(6, ':').collect();
        if p.len() == 6 && t.len() == 6 {
            return p.iter().zip(&t).all(|(p, t)| one(p, t));
        }
    }
    one(pattern, text)
}
