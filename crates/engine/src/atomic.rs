//! Creating an output file so that it appears at its target complete or not at all, and a
//! killed process leaves nothing behind where the file system allows it.
//!
//! On Linux the file is created unnamed (`O_TMPFILE`) in the target's directory: until it
//! is committed it has no name, so a process killed while writing it leaves nothing (the
//! kernel frees an unnamed file when its last descriptor closes). Committing links it at
//! the target (`linkat` of `/proc/self/fd/N`) when the target does not exist; to replace
//! a file it links it under a temporary name and renames that over the target, so the
//! target is always either the old file or the whole new one (only a kill between those
//! two calls can leave a named temporary). Where the file system refuses
//! `O_TMPFILE` (`EOPNOTSUPP`, `EISDIR`, `EINVAL`: older kernels, some network and FUSE file
//! systems) or `/proc` is not mounted, the file is created under a temporary name
//! (`.NAME.safeshift-tmp-XXXXXX`, removed on any error) and renamed when complete; there a
//! killed process leaves that temporary file, recognised by [`crate::TEMP_INFIX`].

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{WriteError, WriteErrorKind};
use crate::writer::TEMP_INFIX;

/// A file being written for a target, not yet visible there.
pub(crate) struct Pending {
    inner: Inner,
}

enum Inner {
    /// An `O_TMPFILE` file: no name until committed.
    Unnamed { file: File, directory: PathBuf, name: String },
    /// A named temporary file beside the target (the fallback).
    Named(NamedTempFile),
}

impl Pending {
    /// Creates the file for `target`, in the target's directory (a rename must not cross
    /// file systems), with the permissions of model files (0644).
    pub fn create(target: &Path) -> Result<Pending, WriteErrorKind> {
        let Some(name) = target.file_name().and_then(|name| name.to_str()) else {
            return Err(WriteErrorKind::BadTarget { message: "the target has no UTF-8 file name".to_owned() });
        };
        let directory = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let io = |action| move |source| WriteErrorKind::Io { action, source };
        if let Some(file) = unnamed(&directory).map_err(io("create the output file"))? {
            // Model files are data for everyone who can read the directory, like `cp`
            // output under the usual umask.
            file.set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(io("set permissions"))?;
            return Ok(Pending { inner: Inner::Unnamed { file, directory, name: name.to_owned() } });
        }
        let file = tempfile::Builder::new()
            .prefix(&format!(".{name}{TEMP_INFIX}"))
            .rand_bytes(6)
            .tempfile_in(&directory)
            .map_err(io("create the temporary file"))?;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).map_err(io("set permissions"))?;
        Ok(Pending { inner: Inner::Named(file) })
    }

    /// The file to write.
    pub fn file(&mut self) -> &mut File {
        match &mut self.inner {
            Inner::Unnamed { file, .. } => file,
            Inner::Named(temp) => temp.as_file_mut(),
        }
    }

    /// Whether the file has no name (it was created with `O_TMPFILE`).
    #[cfg(test)]
    pub fn is_unnamed(&self) -> bool {
        matches!(self.inner, Inner::Unnamed { .. })
    }

    /// Gives the (complete, fsynced) file the name `target`, replacing what is there.
    pub fn commit(self, target: &Path) -> std::io::Result<()> {
        match self.inner {
            Inner::Named(temp) => temp.persist(target).map(drop).map_err(|err| err.error),
            Inner::Unnamed { file, directory, name } => {
                let proc_path = format!("/proc/self/fd/{}", std::os::unix::io::AsRawFd::as_raw_fd(&file));
                // A new target gets its name in one step. linkat refuses an existing name,
                // so to replace a file, link under a fresh temporary name and rename that
                // over the target; retry on the unlikely name collision.
                match link(&proc_path, target) {
                    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                    done => return done,
                }
                for attempt in 0..16u32 {
                    let temporary = directory.join(format!(".{name}{TEMP_INFIX}{}-{attempt}", std::process::id()));
                    match link(&proc_path, &temporary) {
                        Ok(()) => {
                            return std::fs::rename(&temporary, target).inspect_err(|_| {
                                let _ = std::fs::remove_file(&temporary);
                            })
                        }
                        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        Err(err) => return Err(err),
                    }
                }
                Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free temporary name"))
            }
        }
    }
}

/// An `O_TMPFILE` file in `directory`, or `None` where the file system or kernel does not
/// offer one (or `/proc/self/fd`, needed to link it, is missing).
#[cfg(target_os = "linux")]
fn unnamed(directory: &Path) -> std::io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    if !Path::new("/proc/self/fd").is_dir() {
        return Ok(None);
    }
    match std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_TMPFILE).mode(0o600).open(directory) {
        Ok(file) => Ok(Some(file)),
        Err(err) if matches!(err.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)) => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(not(target_os = "linux"))]
fn unnamed(_directory: &Path) -> std::io::Result<Option<File>> {
    Ok(None)
}

/// `linkat(AT_FDCWD, from, AT_FDCWD, to, AT_SYMLINK_FOLLOW)`: gives the file behind the
/// `/proc/self/fd` link `from` the name `to`.
#[cfg(target_os = "linux")]
fn link(from: &str, to: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let from = CString::new(from).map_err(std::io::Error::other)?;
    let to = CString::new(to.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let result =
        unsafe { libc::linkat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn link(_from: &str, _to: &Path) -> std::io::Result<()> {
    unreachable!("unnamed files exist only on Linux")
}

/// Fsyncs each directory once (after renames into them, to make the renames durable).
pub(crate) fn sync_directories(targets: impl IntoIterator<Item = PathBuf>) -> std::io::Result<()> {
    let mut directories: Vec<PathBuf> = Vec::new();
    for target in targets {
        let directory = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        if !directories.contains(&directory) {
            directories.push(directory);
        }
    }
    for directory in directories {
        File::open(&directory)?.sync_all()?;
    }
    Ok(())
}

/// Writes `bytes` as the whole content of `path`, atomically: the file at `path` is either
/// the old one or the complete new one, and a killed process leaves no partial file (see
/// the module documentation for where it may leave a temporary one). A file replaced keeps
/// its permissions. For small files (formatted sources, indexes); tensors go through
/// [`crate::write`].
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let err = |kind| WriteError::new(path, kind);
    let io = |action| move |source| err(WriteErrorKind::Io { action, source });
    let mut pending = Pending::create(path).map_err(err)?;
    // A rewritten file keeps its permissions (a new one gets 0644).
    if let Ok(metadata) = std::fs::metadata(path) {
        pending.file().set_permissions(metadata.permissions()).map_err(io("set permissions"))?;
    }
    pending.file().write_all(bytes).map_err(io("write"))?;
    pending.file().sync_all().map_err(io("fsync"))?;
    pending.commit(path).map_err(io("rename into place"))?;
    sync_directories([path.to_owned()]).map_err(io("fsync the directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_whole_file_replaces_the_target_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "old").unwrap();
        write_file_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(listing(dir.path()), ["a.txt"]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn an_uncommitted_file_has_no_name_where_o_tmpfile_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.safetensors");
        let mut pending = Pending::create(&path).unwrap();
        pending.file().write_all(b"partial").unwrap();
        if pending.is_unnamed() {
            assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
        } else {
            eprintln!("this file system has no O_TMPFILE: the named fallback was used");
        }
        drop(pending);
        assert!(listing(dir.path()).is_empty(), "dropped without commit: nothing remains");
    }
}
