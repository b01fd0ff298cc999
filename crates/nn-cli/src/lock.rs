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

/// Locks the run folder `dir` (created if missing) for this process and cleans up
/// what an interrupted run left under the lock: a checkpoint swap cut short is
/// undone (`nn_train::checkpoint::recover`), temporary files and a half-written
/// checkpoint removed ([`remove_stale_temporaries`]), and a model save cut short in each of
/// `model_dirs` (finished when `model.json` already names the staged weights,
/// removed otherwise: `nn_layers::complete_interrupted_save`). Prints one line per
/// kind of thing it cleaned.
///
/// # Errors
/// As [`acquire`]; [`CliError::Layer`] when staged weights cannot be read, moved or removed.
pub fn take(dir: &Path, model_dirs: &[&Path]) -> Result<RunLock> {
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::Usage(format!("--out {}: exists and is not a directory", dir.display())));
    }
    let lock = acquire(dir)?;
    nn_train::checkpoint::recover(&dir.join("checkpoint"))?;
    let removed = remove_stale_temporaries(&lock, dir, model_dirs);
    if removed > 0 {
        println!("removed {removed} temporary file(s) an interrupted run left in {}", dir.display());
    }
    for model_dir in model_dirs {
        match nn_layers::complete_interrupted_save(model_dir)? {
            nn_layers::InterruptedSave::Completed => {
                println!("finished saving the model an interrupted run left in {}", model_dir.display())
            }
            nn_layers::InterruptedSave::Discarded => {
                println!("removed the unsaved weights an interrupted run left in {}", model_dir.display())
            }
            nn_layers::InterruptedSave::None => {}
        }
    }
    Ok(lock)
}

/// Removes what an interrupted run left in the locked run folder `dir`: temporary
/// files (`.nn-tmp-*`) in it, in `checkpoint/` and in `model_dirs`, a half-written
/// `checkpoint.new/`, and `checkpoint.old/` beside a complete `checkpoint/`. Only files of nn's own naming are touched.
/// Returns how many entries were removed.
pub fn remove_stale_temporaries(_lock: &RunLock, dir: &Path, model_dirs: &[&Path]) -> usize {
    let mut removed = 0;
    let mut folders = vec![dir.to_path_buf(), dir.join("checkpoint")];
    folders.extend(model_dirs.iter().map(|d| d.to_path_buf()));
    folders.dedup();
    for folder in folders {
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
    // The previous checkpoint, kept only while a swap was under way: once the current
    // one is complete, it is stale.
    let old = dir.join("checkpoint.old");
    if dir.join("checkpoint/state.json").is_file() && old.is_dir() && std::fs::remove_dir_all(&old).is_ok() {
        removed += 1;
    }
    removed
}
