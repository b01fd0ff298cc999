//! One run at a time per `--out` folder: an advisory lock on `DIR/.nn-lock`, taken
//! with the standard library's `File::try_lock` (`flock` on Unix). The operating
//! system releases it when the holder exits or is killed, so a lock left by a dead
//! process is simply taken over; the file's text (the holder's process id) is only
//! for the message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{CliError, Result};

/// The lock file in a run folder.
pub const LOCK_FILE: &str = ".nn-lock";

/// The prefix of the temporary files nn writes (`nn_tensor::io::TEMP_PREFIX`).
const TEMP_PREFIX: &str = nn_tensor::io::TEMP_PREFIX;

/// Holds the lock on a run folder until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Locks the run folder `dir` (created if missing) for this process.
///
/// # Errors
/// [`CliError::Usage`] naming the holder's process id when another process holds
/// the lock; [`CliError::Io`] when the folder or the lock file cannot be created.
pub fn acquire(dir: &Path) -> Result<RunLock> {
    std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| CliError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {
            let pid = std::process::id().to_string();
            file.set_len(0)
                .and_then(|()| file.seek(SeekFrom::Start(0)))
                .and_then(|_| file.write_all(pid.as_bytes()))
                .map_err(|e| CliError::io(&path, e))?;
            Ok(RunLock { _file: file })
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() { "another process".to_string() } else { format!("process {holder}") };
            Err(CliError::Usage(format!(
                "{}: another run ({who}) is writing this folder; wait for it to finish or choose another --out",
                dir.display()
            )))
        }
        Err(TryLockError::Error(e)) => Err(CliError::io(&path, e)),
    }
}

/// Removes what an interrupted run left in the locked run folder `dir`: temporary
/// files (`.nn-tmp-*`) in it and in `checkpoint/`, and a half-written
/// `checkpoint.new/`. Only files of nn's own naming are touched. Returns how many
/// entries were removed.
pub fn remove_stale_temporaries(_lock: &RunLock, dir: &Path) -> usize {
    let mut removed = 0;
    for folder in [dir.to_path_buf(), dir.join("checkpoint")] {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let stale = entry.file_name().to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX));
            if stale && entry.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    let half = dir.join("checkpoint.new");
    if half.is_dir() && std::fs::remove_dir_all(&half).is_ok() {
        removed += 1;
    }
    removed
}
