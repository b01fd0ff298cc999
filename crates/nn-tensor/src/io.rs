//! Atomic file writes, shared by every crate that saves something (models,
//! checkpoints, optimizer state, logs): a crash or a full disk never leaves a
//! half-written file, and an existing file is replaced only by a complete new one.

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
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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
