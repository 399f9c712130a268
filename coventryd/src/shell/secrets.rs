//! Secrets for the built-in default configuration: generated once, kept in the
//! state directory in a file only the daemon's user can read (mode 0600), in the
//! same INI form as coventry.conf so it can be pasted into a real configuration.

use crate::config::{Config, BUILTIN_EXTENSIONS};
use crate::shell::persist::write_atomic;
use coventry_shared::runtime::SafeDir;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// File name of the generated secrets in the state directory.
pub const SECRETS_FILE: &str = "secrets";

/// Complete `config`, read from `path`: when the file has no extension sections,
/// the built-in extensions apply with their secrets from `state_dir` (generated
/// there when missing, unless `check_only`). The second value says so, for the
/// log and `--check-config`.
pub fn complete(
    config: Config,
    path: &Path,
    state_dir: &Path,
    check_only: bool,
) -> Result<(Config, Option<String>), String> {
    if !config.lines.is_empty() {
        return Ok((config, None));
    }
    // A check writes nothing and needs no secret: it may run as root on the
    // service's directory, which is not root's own.
    let secrets = if check_only {
        BTreeMap::new()
    } else {
        let numbers: Vec<u16> = BUILTIN_EXTENSIONS.collect();
        load_or_create(state_dir, &numbers).map_err(|e| e.to_string())?
    };
    let config = config.with_builtin_lines(|n| {
        secrets
            .get(&n)
            .cloned()
            .unwrap_or_else(|| "generated-at-first-start".to_string())
    })?;
    let note = format!(
        "{} has no extension sections: the built-in extensions {}-{} apply, secrets in {}",
        path.display(),
        BUILTIN_EXTENSIONS.start(),
        BUILTIN_EXTENSIONS.end(),
        secrets_path(state_dir).display()
    );
    Ok((config, Some(note)))
}

/// Path of the secrets file.
pub fn secrets_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SECRETS_FILE)
}

/// Load the secrets for `numbers`, generating (and saving) any that are missing.
/// Refuses a secrets file that others can read.
pub fn load_or_create(state_dir: &Path, numbers: &[u16]) -> io::Result<BTreeMap<u16, String>> {
    let path = secrets_path(state_dir);
    let mut secrets = BTreeMap::new();
    match SafeDir::of_own_file(&path).and_then(|(dir, name)| dir.read_own(&name)) {
        Ok((bytes, facts)) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| io::Error::other(format!("{} is not UTF-8", path.display())))?;
            let mode = facts.mode;
            if mode & 0o077 != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is readable by others (mode {:o}); chmod 600 it",
                        path.display(),
                        mode & 0o777
                    ),
                ));
            }
            let mut section: Option<u16> = None;
            for line in text.lines() {
                let line = line.trim();
                if let Some(n) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    section = n.parse().ok();
                } else if let (Some(n), Some(v)) = (section, line.strip_prefix("secret")) {
                    if let Some(v) = v.trim_start().strip_prefix('=') {
                        secrets.insert(n, v.trim().to_string());
                    }
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let missing: Vec<u16> = numbers
        .iter()
        .copied()
        .filter(|n| !secrets.contains_key(n))
        .collect();
    if !missing.is_empty() {
        for n in missing {
            // The one rule for generated secrets, shared with `pbxctl ext`.
            secrets.insert(n, coventry_shared::secret::generate()?);
        }
        let mut out = String::from(
            "; Secrets of coventryd's built-in default configuration (generated).\n\
             ; Register a phone as extension N with user name N and this secret.\n",
        );
        for (n, s) in &secrets {
            out.push_str(&format!("\n[{n}]\nsecret = {s}\n"));
        }
        write_atomic(&path, out.as_bytes(), 0o600)?;
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_private_and_stable() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = load_or_create(dir.path(), &[10, 11]).expect("create");
        assert_eq!(a.len(), 2);
        assert!(a
            .values()
            .all(|s| coventry_shared::secret::is_generated_form(s)));
        let mode = std::fs::metadata(secrets_path(dir.path()))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_create(dir.path(), &[10, 11, 12]).expect("again");
        assert_eq!(a[&10], b[&10]);
        assert_eq!(b.len(), 3);
        std::fs::set_permissions(
            secrets_path(dir.path()),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        assert!(load_or_create(dir.path(), &[10]).is_err());
    }
}
