//! Atomic file writes, shared by every crate that saves something (models,
//! checkpoints, optimizer state, logs): a crash or a full disk never leaves a
//! half-written file, and an existing file is replaced only by a complete new one.
//!
//! The write protocol, for every file nn writes: a temporary file named
//! [`TEMP_PREFIX`]`*` in the target folder → write → flush → `fsync` → rename over
//! the target → `fsync` of the folder ([`sync_dir`]). [`crash_point`]s mark the
//! steps between, so tests can stop the process at each one deterministically.

use std::io::{BufWriter, Write};
use std::path::Path;

/// The prefix of the temporary files [`write_atomic`] creates (`.nn-tmp-` and random
/// characters): hidden from `ls`, and recognisable, so that one left behind by a
/// process killed mid-write (`kill -9`, a second Ctrl-C) can be found and removed.
pub const TEMP_PREFIX: &str = ".nn-tmp-";

/// Writes `path` through `write` atomically: the bytes go to a temporary file in the
/// same folder (created by the `tempfile` crate, named [`TEMP_PREFIX`] and random
/// characters), which is flushed, synced to disk and only then renamed over `path`
/// (rename is atomic within a file system on POSIX). On any error the temporary file
/// is removed and `path` is left as it was.
///
/// Permissions: on Unix the file is created with mode `0o666` less the process's
/// umask, as `std::fs::File::create` would (`0o644` under the usual umask `022`),
/// not `tempfile`'s private default `0o600`, so a model saved by one account can
/// be served by another. A replaced file's own mode is not carried over.
///
/// # Errors
/// The first I/O error of creating, writing, syncing or renaming, or the error
/// `write` returns. Callers add the path to the message.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // open(2) applies the umask to this mode, as it does for File::create.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        write(&mut w)?;
        w.flush()?;
    }
    crash_point("write_atomic:written");
    tmp.as_file().sync_all()?;
    crash_point("write_atomic:synced");
    tmp.persist(path).map_err(|e| e.error)?;
    crash_point("write_atomic:renamed");
    sync_dir(dir)
}

/// Flushes folder `dir`'s entries (creations, renames, removals) to disk with
/// `fsync` on the folder, so a rename done before a power loss is not undone after
/// it. A no-op where folders cannot be opened for syncing (not Unix).
///
/// # Errors
/// The I/O error of opening or syncing the folder.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A named step of the write protocol at which tests can crash the process.
///
/// Built with nn-tensor's `failpoints` feature, the `FAILPOINTS` environment
/// variable (read on the first call, in the `fail` crate's syntax:
/// `name=return`, `name=2*off->return` for the third time the step is reached)
/// makes the step abort the process with `std::process::abort`, as `kill -9` would:
/// no destructor runs, so temporary files stay as a real crash leaves them. Any
/// other action of the `fail` crate (`sleep(ms)`, `pause`, ...) works as documented
/// there. Without the feature this does nothing and costs nothing.
///
/// The names used (each defined once where the step is): `write_atomic:written`,
/// `write_atomic:synced`, `write_atomic:renamed`, `model_save:weights_staged`,
/// `model_save:manifest_written`, `checkpoint:staged`, `checkpoint:old_moved`,
/// `checkpoint:swapped`, `run:published`.
#[inline]
pub fn crash_point(name: &str) {
    #[cfg(feature = "failpoints")]
    {
        static SETUP: std::sync::Once = std::sync::Once::new();
        SETUP.call_once(|| std::mem::forget(fail::FailScenario::setup()));
        fail::fail_point!(name, |_| {
            eprintln!("crash point {name}: aborting (FAILPOINTS)");
            std::process::abort();
        });
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_on_success() {
        let dir = std::env::temp_dir().join(format!("nn-tensor-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.json");
        write_atomic(&path, |w| w.write_all(b"first")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // A writer that fails half-way leaves the old file untouched and no temp file.
        let err = write_atomic(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // A missing folder is an error, not a panic.
        assert!(write_atomic(&dir.join("missing/x"), |w| w.write_all(b"x")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
