//! `pbxctl ext add|remove|secret`: extensions managed in coventry.conf itself.
//!
//! The configuration file stays the one source of truth: pbxctl changes the
//! extension's section as text ([`crate::confedit`], every other byte kept),
//! checks the result with the daemon's own parser, writes it atomically (a new
//! file next to it with the old one's mode, owner and group, renamed into
//! place) and has the running daemon reload it. A new secret is printed once,
//! on standard output, and nowhere else.

use crate::commands;
use crate::confedit;
use crate::daemon;
use crate::error::Error;
use crate::output::{Out, Paint};
use coventry_shared::control::Command;
use coventry_shared::event::ResultCode;
use coventry_shared::stateblock::EXT_CONFIGURED;
use coventryd::config::{Config, BUILTIN_EXTENSIONS};
use serde_json::json;
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to do to the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Add its section with a new secret (and a display name).
    Add {
        /// `display = NAME`.
        display: Option<String>,
        /// When the file has no extension sections: copy the built-in ones
        /// (with their secrets) into it first.
        keep_builtin: bool,
        /// When the file has no extension sections: let the built-in ones go.
        drop_builtin: bool,
    },
    /// Remove its section.
    Remove,
    /// Give it a new secret.
    Secret,
}

/// Where things are.
pub struct Places<'a> {
    /// The configuration file to edit.
    pub config: &'a Path,
    /// The daemon's runtime directory.
    pub runtime_dir: &'a Path,
    /// The daemon's state directory (for the built-in secrets).
    pub state_dir: &'a Path,
}

/// Carry out `action` on extension `ext` of the file `places.config`.
pub fn run(
    out: &mut Out,
    places: &Places,
    timeout: Duration,
    ext: u16,
    action: Action,
) -> Result<(), Error> {
    let path = real_path(places.config)?;
    let meta = fs::metadata(&path).map_err(|e| cannot(&path, "read", &e))?;
    check_writable(&path, &meta)?;
    let text = read_text(&path)?;
    let current = Config::parse(&path, &text).map_err(|e| {
        Error::failed(format!(
            "{} is not valid now, so pbxctl leaves it alone: {e}",
            path.display()
        ))
    })?;
    let plan = current.server.plan;
    if !plan.contains(ext) {
        return Err(Error::failed(format!(
            "{ext} is not an extension number of the {plan} plan ({}-{})",
            plan.first(),
            plan.last()
        )));
    }
    let builtin = current.lines.is_empty();
    let file_exts: BTreeSet<u16> = if builtin {
        BUILTIN_EXTENSIONS.collect()
    } else {
        current.lines.keys().copied().collect()
    };
    check_same_daemon(places.runtime_dir, &path, &file_exts)?;
    let mut secret = None;
    let (edited, done) = match &action {
        Action::Add {
            display,
            keep_builtin,
            drop_builtin,
        } => {
            if confedit::has_section(&text, ext) {
                return Err(Error::failed(format!(
                    "{ext} is already configured in {} (pbxctl ext secret {ext} gives it a new secret)",
                    path.display()
                )));
            }
            let display = display.as_deref().map(checked_display).transpose()?;
            let mut base = text.clone();
            if builtin {
                if *keep_builtin {
                    base = with_builtin(&base, places.state_dir)?;
                } else if !*drop_builtin {
                    return Err(Error::failed(format!(
                        "{} has no extension sections, so the built-in extensions {}-{} apply \
                         (their secrets are in {}); a [{ext}] section would end them. Run again with \
                         --keep-builtin to copy them, with their secrets, into the file first, or \
                         with --drop-builtin to let them go",
                        path.display(),
                        BUILTIN_EXTENSIONS.start(),
                        BUILTIN_EXTENSIONS.end(),
                        places.state_dir.join("secrets").display()
                    )));
                }
            }
            let s = new_secret()?;
            let mut keys = vec![("secret", s.as_str())];
            if let Some(d) = display.as_deref() {
                keys.push(("display", d));
            }
            let edited = confedit::add_section(&base, ext, &keys)
                .ok_or_else(|| Error::failed(format!("{ext} is already configured")))?;
            secret = Some(s);
            let name = display.map(|d| format!(" ({d})")).unwrap_or_default();
            (edited, format!("{ext}{name} added to {}", path.display()))
        }
        Action::Remove => {
            let edited = confedit::remove_section(&text, ext)
                .ok_or_else(|| not_configured(&path, ext, builtin))?;
            if confedit::extensions(&edited).is_empty() {
                return Err(Error::failed(format!(
                    "{ext} is the last extension of {}: without extension sections the built-in \
                     extensions {}-{} would apply; add another one first",
                    path.display(),
                    BUILTIN_EXTENSIONS.start(),
                    BUILTIN_EXTENSIONS.end()
                )));
            }
            (edited, format!("{ext} removed from {}", path.display()))
        }
        Action::Secret => {
            let s = new_secret()?;
            let edited = confedit::set_key(&text, ext, "secret", &s)
                .ok_or_else(|| not_configured(&path, ext, builtin))?;
            secret = Some(s);
            (
                edited,
                format!("{ext} has a new secret in {}", path.display()),
            )
        }
    };
    // The daemon's own parser has the last word before anything is written.
    let checked = Config::parse(&path, &edited).map_err(|e| {
        Error::failed(format!(
            "refused, {} is unchanged: the edited file would not be valid: {e}",
            path.display()
        ))
    })?;
    let want_configured = action != Action::Remove;
    if checked.is_configured(ext) != want_configured {
        return Err(Error::failed(format!(
            "refused, {} is unchanged: the edit did not come out as meant",
            path.display()
        )));
    }
    write_atomic(&path, &meta, &text, &edited)?;
    let reloaded = reload(places.runtime_dir, timeout, &path, ext, want_configured);
    let (reload_text, failure) = match reloaded {
        Ok(t) => (t, None),
        Err(e) => (None, Some(e)),
    };
    if out.json {
        out.json_line(&json!({
            "ext": ext,
            "action": match action { Action::Add { .. } => "add", Action::Remove => "remove", Action::Secret => "secret" },
            "file": path.display().to_string(),
            "secret": secret,
            "reloaded": reload_text,
            "ok": failure.is_none(),
        }))?;
    } else {
        let line = match (&reload_text, &failure) {
            (Some(t), _) => out.paint(Paint::Green, &format!("{done}; {t}")),
            (None, None) => out.paint(
                Paint::Green,
                &format!("{done}; the daemon is not running: it applies at its start"),
            ),
            (None, Some(_)) => out.paint(Paint::Yellow, &done),
        };
        out.line(&line)?;
        if let Some(s) = &secret {
            out.line(&format!("secret: {s}"))?;
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The file a path names (a link is followed: the file it points to is edited).
fn real_path(p: &Path) -> Result<PathBuf, Error> {
    fs::canonicalize(p).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::failed(format!(
                "{} does not exist (without it the daemon runs on its built-in extensions \
                 {}-{}); create it (see coventry.conf(5)) and restart the daemon, or name \
                 the daemon's file with --config",
                p.display(),
                BUILTIN_EXTENSIONS.start(),
                BUILTIN_EXTENSIONS.end()
            ))
        } else {
            cannot(p, "read", &e)
        }
    })
}

fn cannot(p: &Path, what: &str, e: &io::Error) -> Error {
    Error::failed(format!("cannot {what} {}: {e}", p.display()))
}

fn not_configured(path: &Path, ext: u16, builtin: bool) -> Error {
    if builtin && BUILTIN_EXTENSIONS.contains(&ext) {
        Error::failed(format!(
            "{} has no [{ext}] section: {ext} is one of the built-in extensions, which apply \
             while the file has no extension sections (`pbxctl ext add N --keep-builtin` \
             copies them into it)",
            path.display()
        ))
    } else {
        Error::failed(format!("{ext} is not configured in {}", path.display()))
    }
}

/// Refuse a file this user may not replace: one without any write permission
/// (taken as read-only on purpose, even for root), one this user may not write,
/// or one in a directory where its replacement cannot be made.
fn check_writable(path: &Path, meta: &fs::Metadata) -> Result<(), Error> {
    use nix::unistd::{access, AccessFlags};
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_file() {
        return Err(Error::failed(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if mode & 0o222 == 0 {
        return Err(Error::failed(format!(
            "{} is read-only (mode {mode:04o}): pbxctl does not edit a configuration made \
             read-only; make it writable (chmod u+w) to manage extensions with pbxctl",
            path.display()
        )));
    }
    if let Err(e) = access(path, AccessFlags::W_OK) {
        return Err(Error::failed(format!(
            "cannot write {}: {} (it belongs to uid {} gid {}, mode {mode:04o}; run pbxctl \
             as a user who may write it)",
            path.display(),
            io::Error::from(e),
            meta.uid(),
            meta.gid()
        )));
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    if let Err(e) = access(dir, AccessFlags::W_OK) {
        return Err(Error::failed(format!(
            "cannot write in {}: {} (the new {} is written next to the old one and renamed \
             into place)",
            dir.display(),
            io::Error::from(e),
            path.display()
        )));
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, Error> {
    let bytes = fs::read(path).map_err(|e| cannot(path, "read", &e))?;
    String::from_utf8(bytes)
        .map_err(|_| Error::failed(format!("{} is not valid UTF-8", path.display())))
}

/// A display name as it may go into the file: trimmed, one line.
fn checked_display(d: &str) -> Result<String, Error> {
    let d = d.trim();
    if d.is_empty() || d.chars().any(char::is_control) {
        return Err(Error::usage(
            "--display needs a name of printable characters on one line",
        ));
    }
    Ok(d.to_string())
}

fn new_secret() -> Result<String, Error> {
    coventry_shared::secret::generate()
        .map_err(|e| Error::failed(format!("cannot draw a random secret: {e}")))
}

/// `text` with the built-in extensions' sections, each with its secret from the
/// daemon's secrets file in `state_dir`.
fn with_builtin(text: &str, state_dir: &Path) -> Result<String, Error> {
    let file = state_dir.join("secrets");
    let secrets = read_text(&file).map_err(|e| {
        Error::failed(format!(
            "--keep-builtin needs the built-in extensions' secrets: {e} (run pbxctl as root \
             or as the daemon's user, or name its state directory with --state-dir)"
        ))
    })?;
    let mut out = text.to_string();
    for n in BUILTIN_EXTENSIONS {
        let s = confedit::get_key(&secrets, n, "secret")
            .ok_or_else(|| Error::failed(format!("{} has no secret for {n}", file.display())))?;
        out = confedit::add_section(&out, n, &[("secret", &s)])
            .ok_or_else(|| Error::failed(format!("{n} is already configured")))?;
    }
    Ok(out)
}

/// Refuse to edit a file that is not the running daemon's: its extensions must be
/// those the daemon has now (a file edited by hand since the last reload must be
/// reloaded first). No daemon: nothing to compare with.
fn check_same_daemon(
    runtime_dir: &Path,
    path: &Path,
    file_exts: &BTreeSet<u16>,
) -> Result<(), Error> {
    let Ok(reader) = daemon::open_state(runtime_dir) else {
        return Ok(());
    };
    if !reader.daemon_alive() {
        return Ok(());
    }
    let snap = daemon::snapshot(&reader)?;
    let plan = snap.header.plan;
    let running: BTreeSet<u16> = plan
        .numbers()
        .filter(|n| snap.ext(*n).is_some_and(|e| e.flags & EXT_CONFIGURED != 0))
        .collect();
    if running != *file_exts {
        return Err(Error::failed(format!(
            "the running daemon's extensions ({}) are not those of {} ({}): if the file was \
             edited since, `pbxctl reload` it first; if the daemon reads another file, name \
             that one with --config",
            list(&running),
            path.display(),
            list(file_exts)
        )));
    }
    Ok(())
}

fn list(s: &BTreeSet<u16>) -> String {
    if s.is_empty() {
        return "none".into();
    }
    s.iter().map(u16::to_string).collect::<Vec<_>>().join(" ")
}

/// Replace `path` (whose metadata was `meta` and text `before`) with `text`: a
/// new file in the same directory with the old one's mode, owner and group,
/// synced, renamed over it. Refused when the file changed since it was read.
fn write_atomic(path: &Path, meta: &fs::Metadata, before: &str, text: &str) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "coventry.conf".into());
    let tmp = dir.join(format!(".{name}.pbxctl-{}", std::process::id()));
    let fail = |what: &str, e: io::Error| {
        let _ = fs::remove_file(&tmp);
        Error::failed(format!(
            "cannot {what} {} ({}); {} is unchanged",
            tmp.display(),
            e,
            path.display()
        ))
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| cannot(&tmp, "create", &e))?;
    f.write_all(text.as_bytes()).map_err(|e| fail("write", e))?;
    let (uid, gid) = (meta.uid(), meta.gid());
    let ours = f.metadata().map_err(|e| fail("read back", e))?;
    if ours.uid() != uid || ours.gid() != gid {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
            .map_err(|e| fail(&format!("give uid {uid} gid {gid} to"), e))?;
    }
    f.set_permissions(fs::Permissions::from_mode(
        meta.permissions().mode() & 0o7777,
    ))
    .map_err(|e| fail("set the mode of", e))?;
    f.sync_all().map_err(|e| fail("sync", e))?;
    drop(f);
    // Someone else's change since it was read is not overwritten.
    match fs::read(path) {
        Ok(now) if now == before.as_bytes() => {}
        _ => {
            let _ = fs::remove_file(&tmp);
            return Err(Error::failed(format!(
                "{} changed while pbxctl was editing it; nothing written, try again",
                path.display()
            )));
        }
    }
    fs::rename(&tmp, path).map_err(|e| fail("rename into place", e))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Have the running daemon reload, and check that it now has (or no longer has)
/// `ext`. `Ok(None)`: no daemon running.
fn reload(
    runtime_dir: &Path,
    timeout: Duration,
    path: &Path,
    ext: u16,
    configured: bool,
) -> Result<Option<String>, Error> {
    match daemon::open_state(runtime_dir) {
        Ok(r) if r.daemon_alive() => {}
        _ => return Ok(None),
    }
    let sent = commands::send(runtime_dir, timeout, Command::Reload).map_err(|e| {
        Error::failed(format!(
            "{} was written, but the daemon could not be made to reload it: {e}",
            path.display()
        ))
    })?;
    if sent.outcome.code != ResultCode::Ok {
        return Err(Error::failed(format!(
            "{} was written, but the daemon refused to reload it: {}",
            path.display(),
            sent.outcome.text
        )));
    }
    let snap = daemon::snapshot(&sent.reader)?;
    let has = snap.ext(ext).is_some_and(|e| e.flags & EXT_CONFIGURED != 0);
    if has != configured {
        return Err(Error::failed(format!(
            "the daemon reloaded, but {} {ext}: does it read {}? (name its file with --config)",
            if configured {
                "does not have"
            } else {
                "still has"
            },
            path.display()
        )));
    }
    Ok(Some(sent.outcome.text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_one_printable_line() {
        assert_eq!(
            checked_display("  Front desk ").as_deref(),
            Ok("Front desk")
        );
        for bad in ["", "  ", "a\nsecret = x", "tab\there", "cr\rx"] {
            assert!(checked_display(bad).is_err(), "{bad:?}");
        }
    }
}
