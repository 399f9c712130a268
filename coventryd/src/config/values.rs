//! The value types keys share: numbers, yes/no, lists, dial codes.

use super::DigestAlgorithm;

/// A whole number from `min` to `max`.
pub(super) fn num(v: &str, min: u32, max: u32) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{v}` must be a whole number from {min} to {max}")),
    }
}

/// Exactly `len` hex digits.
pub(super) fn is_hex(v: &str, len: usize) -> bool {
    v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A list of digest algorithms (`sha256, md5`), in order, without repeats.
pub(super) fn algorithm_list(v: &str) -> Result<Vec<DigestAlgorithm>, String> {
    let mut algs = Vec::new();
    for a in v.split(|c: char| c == ',' || c.is_whitespace()) {
        if a.is_empty() {
            continue;
        }
        let alg = DigestAlgorithm::parse_key(a)
            .ok_or_else(|| format!("unknown algorithm `{a}` (sha256, md5)"))?;
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    if algs.is_empty() {
        return Err("at least one algorithm (sha256, md5)".into());
    }
    Ok(algs)
}

/// `yes`/`no` (also `true`/`false`, `on`/`off`, `1`/`0`).
pub(super) fn yes_no(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("`{v}` must be yes or no")),
    }
}

/// Digits, `*` and `#`, 1 to 32 of them.
pub(super) fn is_dial_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// A list of extension numbers separated by spaces or commas.
pub(super) fn ext_list(v: &str) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for m in v
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|m| !m.is_empty())
    {
        let e: u16 = m
            .parse()
            .map_err(|_| format!("`{m}` is not an extension number"))?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}
