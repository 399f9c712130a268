//! Where the runtime and state directories are, and when a program may trust them.
//!
//! **Where.** The runtime directory: an explicit `--runtime-dir` flag (clap also fills
//! it from `COVENTRY_RUNTIME_DIR`), then `/run/coventry` for root,
//! `$XDG_RUNTIME_DIR/coventry`, and finally `/tmp/coventry-$UID`.
//!
//! **Trust.** One rule for every program, so that another local user can neither read
//! nor steer the switch through files they made:
//!
//! - coventryd uses a runtime or state directory only when it is a real directory (not
//!   a symbolic link) owned by its effective user and not writable by group or others
//!   ([`own_dir_problem`]); it creates a missing one with a tight mode. It works in the
//!   directory through an open handle ([`SafeDir`]): every file is created
//!   exclusively, never through a link (`O_CREAT|O_EXCL|O_NOFOLLOW`), under an
//!   unpredictable temporary name with its mode set at creation, then renamed into
//!   place.
//! - A reader (pbxctl, pbx-tui) trusts a runtime directory that is a real directory
//!   not writable by group or others and owned by itself or root — or by another
//!   user (the daemon's service account) when its parent belongs to root and nobody
//!   else may write there, so only root could have made it, as systemd's
//!   `RuntimeDirectory=` does ([`client_dir_problem`]). The state block must be a
//!   regular file and the control FIFO a FIFO, neither a link, both owned by the
//!   directory's owner ([`file_problem`]).

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Environment variable naming the runtime directory.
pub const RUNTIME_DIR_ENV: &str = "COVENTRY_RUNTIME_DIR";
/// Environment variable naming the persistent state directory.
pub const STATE_DIR_ENV: &str = "COVENTRY_STATE_DIR";
/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "COVENTRY_CONFIG";
/// Configuration file read when none is named.
pub const DEFAULT_CONFIG: &str = "/etc/coventry.conf";
/// File name of the state block inside the runtime directory.
pub const STATE_FILE: &str = "state";
/// File name of the control FIFO inside the runtime directory.
pub const CONTROL_FILE: &str = "control";
/// Mode of a runtime directory coventryd creates (its group may read).
pub const RUNTIME_DIR_MODE: u32 = 0o750;
/// Mode of a state directory coventryd creates: its group may read the call
/// records (`pbxctl records`); the secrets and settings files are the owner's only.
pub const STATE_DIR_MODE: u32 = 0o750;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The system service's runtime directory (the Debian package's unit).
pub const SYSTEM_RUNTIME_DIR: &str = "/run/coventry";
/// The system service's state directory.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/coventry";

/// What a program needs of a directory it looks for: the clients read it (the
/// state block, the records; the control FIFO is the daemon's group's to write),
/// the daemon writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read and enter it (pbxctl, pbx-tui, the pbx-* tools).
    Read,
    /// Also write in it (coventryd).
    Write,
}

/// Whether the system service's directory `dir` exists and this user may use it
/// as `need` says (root, the `coventry` user, members of group `coventry`).
fn system_dir_usable(dir: &str, need: Need) -> bool {
    use nix::unistd::{access, AccessFlags};
    let mut mode = AccessFlags::R_OK | AccessFlags::X_OK;
    if need == Need::Write {
        mode |= AccessFlags::W_OK;
    }
    Path::new(dir).is_dir() && access(dir, mode).is_ok()
}

/// The runtime directory a client looks in: [`runtime_dir_for`] with [`Need::Read`].
pub fn runtime_dir(explicit: Option<&Path>) -> PathBuf {
    runtime_dir_for(explicit, Need::Read)
}

/// The runtime directory: `explicit` (flag or `COVENTRY_RUNTIME_DIR`); else the
/// system service's (`/run/coventry`) for root, or when it exists and this user
/// may use it as `need` says; else the per-user one (`$XDG_RUNTIME_DIR/coventry`,
/// `/tmp/coventry-UID`).
pub fn runtime_dir_for(explicit: Option<&Path>, need: Need) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(RUNTIME_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if is_root() || system_dir_usable(SYSTEM_RUNTIME_DIR, need) {
        return PathBuf::from(SYSTEM_RUNTIME_DIR);
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("coventry");
    }
    PathBuf::from(format!("/tmp/coventry-{}", nix::unistd::getuid()))
}

/// The state directory a client looks in: [`state_dir_for`] with [`Need::Read`].
pub fn state_dir(explicit: Option<&Path>) -> PathBuf {
    state_dir_for(explicit, Need::Read)
}

/// The persistent state directory: `explicit` (flag or `COVENTRY_STATE_DIR`);
/// else the system service's (`/var/lib/coventry`) for root, or when it exists
/// and this user may use it as `need` says; else `$XDG_STATE_HOME/coventry`,
/// `~/.local/state/coventry`.
pub fn state_dir_for(explicit: Option<&Path>, need: Need) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(STATE_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if is_root() || system_dir_usable(SYSTEM_STATE_DIR, need) {
        return PathBuf::from(SYSTEM_STATE_DIR);
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("coventry");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/state/coventry");
    }
    PathBuf::from(format!("/tmp/coventry-state-{}", nix::unistd::getuid()))
}

/// Path of the state block in `runtime_dir`.
pub fn state_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(STATE_FILE)
}

/// Path of the control FIFO in `runtime_dir`.
pub fn control_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(CONTROL_FILE)
}

// ----- the rules (pure) -----

/// Mode bits that let the group or others add, remove or rename entries.
const SHARED_WRITE: u32 = 0o022;
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFIFO: u32 = 0o010_000;
const S_IFLNK: u32 = 0o120_000;

/// Owner and `st_mode` (type and permissions) of a directory or file: what the
/// trust rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// Owning user id.
    pub uid: u32,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
}

impl Facts {
    /// The facts of `meta`.
    pub fn of(meta: &std::fs::Metadata) -> Facts {
        Facts {
            uid: meta.uid(),
            mode: meta.mode(),
        }
    }

    fn kind(self) -> u32 {
        self.mode & S_IFMT
    }

    fn perms(self) -> u32 {
        self.mode & 0o7777
    }
}

/// What a file in the runtime directory must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (the state block).
    Regular,
    /// A FIFO (the control FIFO).
    Fifo,
}

/// `uid 65534 (nobody)`, or `uid N` when the user has no name.
pub fn describe_uid(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// Why coventryd, running as `euid`, may not keep its files in directory `dir`
/// (`None`: it may): it must be a directory owned by `euid`, not writable by group or
/// others.
pub fn own_dir_problem(dir: Facts, euid: u32) -> Option<String> {
    if dir.kind() != S_IFDIR {
        return Some("it is not a directory".into());
    }
    if dir.uid != euid {
        return Some(format!(
            "it is owned by {}, not by {} that coventryd runs as",
            describe_uid(dir.uid),
            describe_uid(euid)
        ));
    }
    if dir.perms() & SHARED_WRITE != 0 {
        return Some(format!(
            "its mode {:04o} lets group or others write in it",
            dir.perms()
        ));
    }
    None
}

/// Why a reader running as `euid` may not trust the runtime directory `dir` whose
/// parent directory is `parent` (`None` when it could not be examined) (`None`: it
/// may). Trusted: a directory not writable
/// by group or others, owned by `euid` or root, or by another user when `parent`
/// belongs to root and is not writable by group or others (only root could have
/// made it, as systemd does for a service's `RuntimeDirectory=`).
pub fn client_dir_problem(dir: Facts, parent: Option<Facts>, euid: u32) -> Option<String> {
    if dir.kind() != S_IFDIR {
        return Some("it is not a directory".into());
    }
    if dir.perms() & SHARED_WRITE != 0 {
        return Some(format!(
            "its mode {:04o} lets group or others write in it (owner {})",
            dir.perms(),
            describe_uid(dir.uid)
        ));
    }
    if dir.uid == euid || dir.uid == 0 {
        return None;
    }
    let Some(parent) = parent else {
        return Some(format!(
            "it is owned by {}, neither you nor root, and its parent directory cannot \
             be examined",
            describe_uid(dir.uid)
        ));
    };
    if parent.uid == 0 && parent.kind() == S_IFDIR && parent.perms() & SHARED_WRITE == 0 {
        return None;
    }
    Some(format!(
        "it is owned by {}, neither you nor root, and sits in a directory others may \
         write to, so anyone could have made it",
        describe_uid(dir.uid)
    ))
}

/// Why a reader may not trust a file in a trusted directory owned by `dir_owner`
/// (`None`: it may): it must be of kind `want` and owned by `dir_owner`.
pub fn file_problem(file: Facts, dir_owner: u32, want: Kind) -> Option<String> {
    let kind_ok = match want {
        Kind::Regular => file.kind() == S_IFREG,
        Kind::Fifo => file.kind() == S_IFIFO,
    };
    if file.kind() == S_IFLNK {
        return Some("it is a symbolic link".into());
    }
    if !kind_ok {
        return Some(match want {
            Kind::Regular => "it is not a regular file".into(),
            Kind::Fifo => "it is not a FIFO".into(),
        });
    }
    if file.uid != dir_owner {
        return Some(format!(
            "it is owned by {}, not by {} that owns its directory",
            describe_uid(file.uid),
            describe_uid(dir_owner)
        ));
    }
    None
}

// ----- errors -----

/// Why a directory or a file in it is not used.
#[derive(Debug)]
pub enum TrustError {
    /// It does not exist.
    Missing(PathBuf),
    /// It cannot be opened or examined (permission denied, no reader on a FIFO...).
    Io(PathBuf, io::Error),
    /// It exists but may not be trusted; the text says why and what to do.
    Untrusted(PathBuf, String),
}

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustError::Missing(p) => write!(f, "{}: does not exist", p.display()),
            TrustError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            TrustError::Untrusted(p, why) => write!(f, "{}: {why}", p.display()),
        }
    }
}

impl std::error::Error for TrustError {}

impl From<TrustError> for io::Error {
    fn from(e: TrustError) -> io::Error {
        let kind = match &e {
            TrustError::Missing(_) => io::ErrorKind::NotFound,
            TrustError::Io(_, e) => e.kind(),
            TrustError::Untrusted(..) => io::ErrorKind::PermissionDenied,
        };
        io::Error::new(kind, e.to_string())
    }
}

/// Which of coventryd's directories, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The runtime directory (state block, control FIFO).
    Runtime,
    /// The state directory (registrations, settings, secrets).
    State,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Runtime => "runtime directory",
            Role::State => "state directory",
        }
    }

    fn option(self) -> &'static str {
        match self {
            Role::Runtime => "--runtime-dir or COVENTRY_RUNTIME_DIR",
            Role::State => "--state-dir or COVENTRY_STATE_DIR",
        }
    }
}

// ----- the directory handle -----

/// Flags for opening a directory itself: never through a link. The daemon reads
/// its own directories (to list and fsync them); a reader needs only a handle
/// (`O_PATH`), so search permission is enough for it.
fn dir_flags(reader: bool) -> OFlags {
    let access = if reader { OFlags::PATH } else { OFlags::RDONLY };
    access | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Open the directory `path` itself, never through a symbolic link.
fn open_dir(path: &Path, reader: bool) -> Result<File, TrustError> {
    match rfs::openat(rfs::CWD, path, dir_flags(reader), Mode::empty()) {
        Ok(fd) => Ok(File::from(fd)),
        Err(Errno::NOENT) => Err(TrustError::Missing(path.to_path_buf())),
        // O_NOFOLLOW|O_DIRECTORY on a link fails with ELOOP or ENOTDIR: say which.
        Err(Errno::LOOP | Errno::NOTDIR) => {
            let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            Err(TrustError::Untrusted(
                path.to_path_buf(),
                if link {
                    "it is a symbolic link".into()
                } else {
                    "it is not a directory".into()
                },
            ))
        }
        Err(e) => Err(TrustError::Io(path.to_path_buf(), io_err(e))),
    }
}

fn meta_of(f: &File, path: &Path) -> Result<Facts, TrustError> {
    f.metadata()
        .map(|m| Facts::of(&m))
        .map_err(|e| TrustError::Io(path.to_path_buf(), e))
}

/// 64 unpredictable bits (the process's random hash keys mixed with a counter, the
/// clock and the pid) for temporary names.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Whether `name` is one of our temporary names: `.STEM.HEX.tmp`.
fn is_temp_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    match inner.rsplit_once('.') {
        Some((stem, hex)) => {
            !stem.is_empty() && !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// A directory held open after its trust check: everything done in it goes through
/// this handle (`openat`, `renameat`...), so renaming the directory or swapping a
/// link after the check changes nothing.
#[derive(Debug)]
pub struct SafeDir {
    dir: File,
    path: PathBuf,
    owner: u32,
}

impl SafeDir {
    /// coventryd's own `role` directory at `path`: created (parents too) with `mode`
    /// when missing, refused with a message naming its owner, its mode and the fix
    /// unless it is a real directory owned by the effective user and not writable by
    /// group or others.
    pub fn own(path: &Path, mode: u32, role: Role) -> Result<SafeDir, TrustError> {
        let created = match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(mode)
                    .create(path)
                    .map_err(|e| TrustError::Io(path.to_path_buf(), e))?;
                true
            }
            _ => false,
        };
        let refuse = |why: String, facts: Option<Facts>| {
            let seen = facts
                .or_else(|| std::fs::symlink_metadata(path).ok().map(|m| Facts::of(&m)))
                .map(|f| format!(" (owner {}, mode {:04o})", describe_uid(f.uid), f.perms()))
                .unwrap_or_default();
            TrustError::Untrusted(
                path.to_path_buf(),
                format!(
                    "refusing it as coventryd's {}: {why}{seen}. Another user may have \
                     made it to read or steer the switch. Remove it (or make it a \
                     directory owned by the daemon's user, chmod {:o}), or name another \
                     with {}",
                    role.name(),
                    mode,
                    role.option()
                ),
            )
        };
        let dir = match open_dir(path, false) {
            Err(TrustError::Untrusted(_, why)) => return Err(refuse(why, None)),
            other => other?,
        };
        let euid = nix::unistd::geteuid().as_raw();
        let mut facts = meta_of(&dir, path)?;
        if created && facts.uid == euid {
            // DirBuilder honours the umask; set the mode we mean.
            rfs::fchmod(&dir, Mode::from_raw_mode(mode))
                .map_err(|e| TrustError::Io(path.to_path_buf(), io_err(e)))?;
            facts = meta_of(&dir, path)?;
        }
        if let Some(why) = own_dir_problem(facts, euid) {
            return Err(refuse(why, Some(facts)));
        }
        Ok(SafeDir {
            dir,
            path: path.to_path_buf(),
            owner: euid,
        })
    }

    /// coventryd's own directory at `path`, which must exist (the directory of a file
    /// it writes); the same check as [`SafeDir::own`].
    pub fn open_own(path: &Path) -> Result<SafeDir, TrustError> {
        let dir = open_dir(path, false)?;
        let euid = nix::unistd::geteuid().as_raw();
        if let Some(why) = own_dir_problem(meta_of(&dir, path)?, euid) {
            return Err(TrustError::Untrusted(
                path.to_path_buf(),
                format!("refusing to write in it: {why}"),
            ));
        }
        Ok(SafeDir {
            dir,
            path: path.to_path_buf(),
            owner: euid,
        })
    }

    /// The daemon's own directory holding the file at `path`, and the file's name.
    pub fn of_own_file(path: &Path) -> io::Result<(SafeDir, String)> {
        let (dir, name) = split(path)?;
        Ok((SafeDir::open_own(&dir)?, name))
    }

    /// A daemon's runtime directory as a reader (pbxctl, pbx-tui) may trust it
    /// ([`client_dir_problem`]).
    pub fn trusted(path: &Path) -> Result<SafeDir, TrustError> {
        SafeDir::trusted_with(path, true)
    }

    /// A daemon's directory as [`SafeDir::trusted`], opened so that a client may
    /// also create files in it (`pbxctl runstate` while the daemon is down).
    pub fn trusted_for_writing(path: &Path) -> Result<SafeDir, TrustError> {
        SafeDir::trusted_with(path, false)
    }

    fn trusted_with(path: &Path, reader: bool) -> Result<SafeDir, TrustError> {
        let dir = open_dir(path, reader)?;
        let meta = dir
            .metadata()
            .map_err(|e| TrustError::Io(path.to_path_buf(), e))?;
        let facts = Facts::of(&meta);
        let euid = nix::unistd::geteuid().as_raw();
        let parent_facts = if facts.uid == euid || facts.uid == 0 {
            None // not needed
        } else {
            parent_of(path, (meta.dev(), meta.ino()))
        };
        if let Some(why) = client_dir_problem(facts, parent_facts, euid) {
            return Err(TrustError::Untrusted(
                path.to_path_buf(),
                format!(
                    "refusing it as coventryd's directory: {why}. Name the daemon's \
                     directory with its option (--runtime-dir or COVENTRY_RUNTIME_DIR; \
                     --state-dir or COVENTRY_STATE_DIR)"
                ),
            ));
        }
        Ok(SafeDir {
            dir,
            path: path.to_path_buf(),
            owner: facts.uid,
        })
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its owner.
    pub fn owner(&self) -> u32 {
        self.owner
    }

    /// For a reader: open `name`, which must be a `kind` owned by the directory's
    /// owner and not a link ([`file_problem`]); read-only, or write-only for `write`,
    /// always non-blocking (a FIFO without reader then fails with `ENXIO` at once).
    pub fn open_checked(&self, name: &str, kind: Kind, write: bool) -> Result<File, TrustError> {
        let path = self.path.join(name);
        let st = match rfs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Err(TrustError::Missing(path)),
            Err(e) => return Err(TrustError::Io(path, io_err(e))),
        };
        let before = Facts {
            uid: st.st_uid,
            mode: st.st_mode,
        };
        if let Some(why) = file_problem(before, self.owner, kind) {
            return Err(TrustError::Untrusted(path, format!("refusing it: {why}")));
        }
        let access = if write {
            OFlags::WRONLY
        } else {
            OFlags::RDONLY
        };
        let flags = access | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let file = match rfs::openat(&self.dir, name, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::NOENT) => return Err(TrustError::Missing(path)),
            Err(e) => return Err(TrustError::Io(path, io_err(e))),
        };
        let meta = file
            .metadata()
            .map_err(|e| TrustError::Io(path.clone(), e))?;
        if (meta.dev(), meta.ino()) != (st.st_dev, st.st_ino) {
            return Err(TrustError::Untrusted(
                path,
                "refusing it: it was replaced while being opened".into(),
            ));
        }
        if let Some(why) = file_problem(Facts::of(&meta), self.owner, kind) {
            return Err(TrustError::Untrusted(path, format!("refusing it: {why}")));
        }
        Ok(file)
    }

    /// For the daemon: a new file created exclusively under an unpredictable name
    /// `.STEM.HEX.tmp` (never through a link), with exactly `mode`; removed again
    /// unless [`TempFile::commit`]ted.
    pub fn create_temp(&self, stem: &str, mode: u32) -> io::Result<TempFile<'_>> {
        let flags = OFlags::RDWR
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::NOCTTY
            | OFlags::CLOEXEC;
        for _ in 0..16 {
            let name = format!(".{stem}.{:016x}.tmp", random_u64());
            match rfs::openat(&self.dir, name.as_str(), flags, Mode::from_raw_mode(mode)) {
                Ok(fd) => {
                    let t = TempFile {
                        dir: self,
                        name,
                        file: File::from(fd),
                        done: false,
                    };
                    // openat honours the umask; set the mode we mean.
                    rfs::fchmod(&t.file, Mode::from_raw_mode(mode)).map_err(io_err)?;
                    return Ok(t);
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{}: no free temporary name", self.path.display()),
        ))
    }

    /// For the daemon: replace `name` with `bytes` atomically (temporary file with
    /// `mode`, fsync, rename, fsync of the directory), so a crash at any moment
    /// leaves the old or the new file, never a torn one.
    pub fn write_atomic(&self, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        let t = self.create_temp(name, mode)?;
        (&t.file).write_all(bytes)?;
        t.commit(name, true)
    }

    /// For the daemon: its own regular file `name` opened for appending (created
    /// with `mode` when missing; never through a link, never someone else's).
    pub fn open_append(&self, name: &str, mode: u32) -> io::Result<File> {
        let flags = OFlags::WRONLY
            | OFlags::APPEND
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NOCTTY
            | OFlags::CLOEXEC;
        let file = match rfs::openat(&self.dir, name, flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => File::from(fd),
            Err(Errno::LOOP) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: is a symbolic link", self.path.join(name).display()),
                ))
            }
            Err(e) => return Err(io_err(e)),
        };
        let facts = Facts::of(&file.metadata()?);
        if facts.kind() != S_IFREG || facts.uid != self.owner {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: not a regular file of {}",
                    self.path.join(name).display(),
                    describe_uid(self.owner)
                ),
            ));
        }
        Ok(file)
    }

    /// For the daemon: the content of its own regular file `name` (never through a
    /// link) and the file's facts.
    pub fn read_own(&self, name: &str) -> io::Result<(Vec<u8>, Facts)> {
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let mut file = match rfs::openat(&self.dir, name, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::LOOP) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: is a symbolic link", self.path.join(name).display()),
                ))
            }
            Err(e) => return Err(io_err(e)),
        };
        let facts = Facts::of(&file.metadata()?);
        if facts.kind() != S_IFREG {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a regular file", self.path.join(name).display()),
            ));
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok((bytes, facts))
    }

    /// Rename `from` to `to` inside the directory.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        rfs::renameat(&self.dir, from, &self.dir, to).map_err(io_err)
    }

    /// Remove the entry `name` (a link itself, never its target).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        rfs::unlinkat(&self.dir, name, AtFlags::empty()).map_err(io_err)
    }

    /// Flush the directory's entries to the disk.
    pub fn sync(&self) -> io::Result<()> {
        self.dir.sync_all()
    }

    /// For the daemon: create the FIFO `name` with exactly `mode` (replacing a stale
    /// FIFO, refusing to replace anything else) and open it read-write and
    /// non-blocking, so it never sees end-of-file.
    pub fn create_fifo(&self, name: &str, mode: u32) -> io::Result<File> {
        match rfs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & S_IFMT == S_IFIFO => self.remove(name)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a FIFO",
                        self.path.join(name).display()
                    ),
                ))
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(io_err(e)),
        }
        rfs::mknodat(
            &self.dir,
            name,
            FileType::Fifo,
            Mode::from_raw_mode(mode),
            0,
        )
        .map_err(io_err)?;
        let f = self.open_fifo(name)?;
        // mknod honours the umask; set the mode we mean.
        rfs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(io_err)?;
        Ok(f)
    }

    /// For the daemon: open its FIFO `name` read-write and non-blocking (never
    /// through a link; it must be a FIFO of its own).
    pub fn open_fifo(&self, name: &str) -> io::Result<File> {
        let flags =
            OFlags::RDWR | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC;
        let f = File::from(rfs::openat(&self.dir, name, flags, Mode::empty()).map_err(io_err)?);
        if let Some(why) = file_problem(Facts::of(&f.metadata()?), self.owner, Kind::Fifo) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{}: {why}", self.path.join(name).display()),
            ));
        }
        Ok(f)
    }

    /// For the daemon: remove temporary files a crash left behind (regular files
    /// named `.STEM.HEX.tmp`); returns how many.
    pub fn remove_stale_temps(&self) -> io::Result<usize> {
        let mut names = Vec::new();
        let mut dir = rfs::Dir::read_from(&self.dir).map_err(io_err)?;
        // Bounded: a directory of ours holds a handful of entries; cap the walk anyway.
        for _ in 0..100_000 {
            let Some(entry) = dir.next() else { break };
            let entry = entry.map_err(io_err)?;
            if let Ok(name) = entry.file_name().to_str() {
                if is_temp_name(name) && entry.file_type() == FileType::RegularFile {
                    names.push(name.to_string());
                }
            }
        }
        let mut removed = 0;
        for n in names {
            if self.remove(&n).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The facts of the directory holding `path`, provided it really holds the
/// directory `dev_ino` we opened (found by name, which needs only search
/// permission there, and compared, so a path swapped in between is noticed).
fn parent_of(path: &Path, dev_ino: (u64, u64)) -> Option<Facts> {
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let p = rfs::openat(
        rfs::CWD,
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
    .map(File::from)?;
    let st = rfs::statat(&p, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    if (st.st_dev, st.st_ino) != dev_ino {
        return None;
    }
    p.metadata().ok().map(|m| Facts::of(&m))
}

/// Split a file path into its directory (`.` for a bare name) and its name.
fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: no file name", path.display()),
            )
        })?
        .to_string();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// For a reader: open the file at `path` — the state block (`Kind::Regular`, read)
/// or the control FIFO (`Kind::Fifo`, `write`) — after checking its directory
/// ([`SafeDir::trusted`]) and the file ([`SafeDir::open_checked`]).
pub fn open_trusted(path: &Path, kind: Kind, write: bool) -> Result<File, TrustError> {
    let (dir, name) = split(path).map_err(|e| TrustError::Io(path.to_path_buf(), e))?;
    SafeDir::trusted(&dir)?.open_checked(&name, kind, write)
}

/// A file being built under a temporary name in a [`SafeDir`].
pub struct TempFile<'d> {
    dir: &'d SafeDir,
    name: String,
    file: File,
    done: bool,
}

impl TempFile<'_> {
    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Its temporary name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Rename it to `name`, replacing what is there. `durable`: its data reaches the
    /// disk before the rename, and the directory entry after it.
    pub fn commit(mut self, name: &str, durable: bool) -> io::Result<()> {
        if durable {
            self.file.sync_all()?;
        }
        self.dir.rename(&self.name, name)?;
        self.done = true;
        if durable {
            self.dir.sync()?;
        }
        Ok(())
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.dir.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const DIR: u32 = S_IFDIR;

    fn facts(uid: u32, mode: u32) -> Facts {
        Facts { uid, mode }
    }

    #[test]
    fn explicit_wins() {
        assert_eq!(runtime_dir(Some(Path::new("/x/y"))), PathBuf::from("/x/y"));
        assert_eq!(state_dir(Some(Path::new("/s"))), PathBuf::from("/s"));
        assert_eq!(state_path(Path::new("/r")), PathBuf::from("/r/state"));
        assert_eq!(control_path(Path::new("/r")), PathBuf::from("/r/control"));
    }

    #[test]
    fn the_daemon_keeps_files_only_in_its_own_closed_directory() {
        assert_eq!(own_dir_problem(facts(1000, DIR | 0o750), 1000), None);
        assert_eq!(own_dir_problem(facts(1000, DIR | 0o755), 1000), None);
        assert_eq!(own_dir_problem(facts(0, DIR | 0o700), 0), None);
        let other = own_dir_problem(facts(1, DIR | 0o700), 1000).expect("foreign");
        assert!(other.contains("owned by uid 1"), "{other}");
        let open = own_dir_problem(facts(1000, DIR | 0o777), 1000).expect("0777");
        assert!(open.contains("0777"), "{open}");
        assert!(own_dir_problem(facts(1000, DIR | 0o770), 1000).is_some());
        assert!(own_dir_problem(facts(1000, DIR | 0o1777), 1000).is_some());
        assert!(own_dir_problem(facts(1000, S_IFREG | 0o700), 1000).is_some());
    }

    #[test]
    fn readers_trust_their_own_roots_or_a_service_dir_made_by_root() {
        let root_parent = Some(facts(0, DIR | 0o755));
        let tmp = Some(facts(0, DIR | 0o1777));
        // Our own or root's: trusted wherever it is.
        assert_eq!(
            client_dir_problem(facts(1000, DIR | 0o700), tmp, 1000),
            None
        );
        assert_eq!(client_dir_problem(facts(0, DIR | 0o755), tmp, 1000), None);
        // A service account's under /run: only root could have made it.
        assert_eq!(
            client_dir_problem(facts(998, DIR | 0o750), root_parent, 1000),
            None
        );
        // Another user's under /tmp: anyone could have.
        let why = client_dir_problem(facts(1, DIR | 0o755), tmp, 1000).expect("tmp");
        assert!(why.contains("anyone could have made it"), "{why}");
        // Under a parent owned by another user, or one group-writable.
        assert!(
            client_dir_problem(facts(998, DIR | 0o750), Some(facts(998, DIR | 0o755)), 1000)
                .is_some()
        );
        assert!(
            client_dir_problem(facts(998, DIR | 0o750), Some(facts(0, DIR | 0o775)), 1000)
                .is_some()
        );
        // A parent that could not be examined (or is not the directory's).
        assert!(client_dir_problem(facts(998, DIR | 0o750), None, 1000).is_some());
        // Writable by others: never, not even our own.
        assert!(client_dir_problem(facts(1000, DIR | 0o777), root_parent, 1000).is_some());
        assert!(client_dir_problem(facts(0, DIR | 0o1777), root_parent, 1000).is_some());
    }

    #[test]
    fn files_must_be_what_they_claim_and_the_directory_owners() {
        use Kind::*;
        assert_eq!(
            file_problem(facts(998, S_IFREG | 0o640), 998, Regular),
            None
        );
        assert_eq!(file_problem(facts(998, S_IFIFO | 0o660), 998, Fifo), None);
        assert!(file_problem(facts(1, S_IFIFO | 0o666), 998, Fifo)
            .expect("foreign")
            .contains("owned by uid 1"));
        assert!(file_problem(facts(998, S_IFREG | 0o640), 998, Fifo)
            .expect("kind")
            .contains("not a FIFO"));
        assert!(file_problem(facts(998, S_IFLNK | 0o777), 998, Regular)
            .expect("link")
            .contains("symbolic link"));
    }

    #[test]
    fn temp_names() {
        assert!(is_temp_name(".state.0123456789abcdef.tmp"));
        assert!(is_temp_name(".registrations.json.00000000000000ff.tmp"));
        assert!(is_temp_name(".state.4242.tmp"), "old pid-style name");
        assert!(!is_temp_name("state"));
        assert!(!is_temp_name(".state.tmp"));
        assert!(!is_temp_name(".state.xyz.tmp"));
        assert!(!is_temp_name("..zz.tmp"));
    }

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p)
            .expect("meta")
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn own_dir_is_created_tight_and_a_loose_or_linked_one_refused() {
        let t = tempfile::tempdir().expect("tmp");
        let run = t.path().join("a/b/run");
        let d = SafeDir::own(&run, 0o750, Role::Runtime).expect("created");
        assert_eq!(mode_of(&run), 0o750);
        drop(d);
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = SafeDir::own(&run, 0o750, Role::Runtime).expect_err("0777");
        let text = e.to_string();
        assert!(
            text.contains("0777") && text.contains("--runtime-dir"),
            "{text}"
        );
        let link = t.path().join("link");
        std::os::unix::fs::symlink(t.path(), &link).expect("symlink");
        let e = SafeDir::own(&link, 0o700, Role::State).expect_err("link");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(e.to_string().contains("--state-dir"), "{e}");
    }

    #[test]
    fn files_are_created_exclusively_and_never_through_links() {
        let t = tempfile::tempdir().expect("tmp");
        let d = SafeDir::own(t.path(), 0o700, Role::State).expect("dir");
        let victim = t.path().join("victim");
        std::fs::write(&victim, "precious").expect("victim");
        // A planted link under the final name is replaced, its target untouched.
        std::os::unix::fs::symlink(&victim, t.path().join("settings.json")).expect("link");
        d.write_atomic("settings.json", b"{}", 0o600)
            .expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        assert_eq!(
            std::fs::read(t.path().join("settings.json")).expect("read"),
            b"{}"
        );
        assert_eq!(mode_of(&t.path().join("settings.json")), 0o600);
        let (bytes, _) = d.read_own("settings.json").expect("read own");
        assert_eq!(bytes, b"{}");
        // Reading through a link is refused.
        std::os::unix::fs::symlink(&victim, t.path().join("secrets")).expect("link");
        assert!(d.read_own("secrets").is_err());
        // No temporary file is left behind; a dropped one is removed.
        let tmp_names = || {
            std::fs::read_dir(t.path())
                .expect("ls")
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .count()
        };
        assert_eq!(tmp_names(), 0);
        drop(d.create_temp("state", 0o640).expect("temp"));
        assert_eq!(tmp_names(), 0);
        // A crash's leftovers do not block the next file and are cleaned up.
        let left = d.create_temp("state", 0o640).expect("temp");
        let left_name = left.name().to_string();
        std::mem::forget(left);
        std::fs::write(t.path().join(".state.4242.tmp"), "old").expect("old");
        d.create_temp("state", 0o640)
            .expect("another")
            .commit("state", false)
            .expect("commit");
        assert!(t.path().join(&left_name).exists());
        assert_eq!(d.remove_stale_temps().expect("clean"), 2);
        assert_eq!(tmp_names(), 0);
        assert!(t.path().join("state").exists());
    }

    #[test]
    fn fifo_is_made_with_its_mode_and_checked_by_readers() {
        let t = tempfile::tempdir().expect("tmp");
        let d = SafeDir::own(t.path(), 0o750, Role::Runtime).expect("dir");
        let _r = d.create_fifo(CONTROL_FILE, 0o660).expect("fifo");
        assert_eq!(mode_of(&t.path().join(CONTROL_FILE)), 0o660);
        // Again (a restart): the stale FIFO is replaced.
        let _r2 = d.create_fifo(CONTROL_FILE, 0o660).expect("again");
        let w = open_trusted(&control_path(t.path()), Kind::Fifo, true).expect("writer");
        drop(w);
        // The FIFO is not a regular file, the state block is missing.
        let e = open_trusted(&control_path(t.path()), Kind::Regular, false).expect_err("kind");
        assert!(matches!(e, TrustError::Untrusted(..)), "{e}");
        let e = open_trusted(&state_path(t.path()), Kind::Regular, false).expect_err("none");
        assert!(matches!(e, TrustError::Missing(_)), "{e}");
        // A link where the state block should be is refused.
        std::os::unix::fs::symlink("/etc/passwd", state_path(t.path())).expect("link");
        let e = open_trusted(&state_path(t.path()), Kind::Regular, false).expect_err("link");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // Something that is not a FIFO is never replaced by the daemon.
        assert!(d.create_fifo(STATE_FILE, 0o660).is_err());
    }

    #[test]
    fn readers_refuse_files_of_another_user() {
        if !nix::unistd::geteuid().is_root() {
            return; // needs chown
        }
        let t = tempfile::tempdir().expect("tmp");
        let state = state_path(t.path());
        std::fs::write(&state, "x").expect("write");
        assert!(open_trusted(&state, Kind::Regular, false).is_ok());
        nix::unistd::chown(&state, Some(nix::unistd::Uid::from_raw(1)), None).expect("chown");
        let e = open_trusted(&state, Kind::Regular, false).expect_err("foreign");
        assert!(e.to_string().contains("owned by uid 1"), "{e}");
        let control = control_path(t.path());
        nix::unistd::mkfifo(&control, nix::sys::stat::Mode::from_bits_truncate(0o666))
            .expect("mkfifo");
        nix::unistd::chown(&control, Some(nix::unistd::Uid::from_raw(1)), None).expect("chown");
        let e = open_trusted(&control, Kind::Fifo, true).expect_err("foreign FIFO");
        assert!(e.to_string().contains("owned by uid 1"), "{e}");
        // A directory of another user under /tmp-like parent (world-writable).
        let sub = t.path().join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        nix::unistd::chown(&sub, Some(nix::unistd::Uid::from_raw(1)), None).expect("chown");
        let e = SafeDir::trusted(&sub).expect_err("foreign dir");
        assert!(e.to_string().contains("anyone could have made it"), "{e}");
        // The same directory under a closed parent owned by root is a service's.
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let d = SafeDir::trusted(&sub).expect("service dir");
        assert_eq!(d.owner(), 1);
    }
}
