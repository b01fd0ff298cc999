//! `write_atomic` gives saved files the process's normal permissions (`0o666` less
//! the umask, as `File::create` does), not `tempfile`'s private `0o600`, and names
//! its temporary files `.nn-tmp-*`.
//!
//! The umask is process-wide, so this test lives in its own test binary (its own
//! process) and is the only test in it.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;

use nn_tensor::io::{write_atomic, TEMP_PREFIX};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn saved_files_follow_the_umask_and_temp_files_are_recognisable() {
    let dir = std::env::temp_dir().join(format!("nn-tensor-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.json");
    // SAFETY: umask(2) only swaps the process's file-mode mask; it cannot fail.
    let saved = unsafe { libc::umask(0o022) };
    let mut seen = Vec::new();
    write_atomic(&path, |w| {
        // While writing, the only other entry of the folder is the temporary file.
        for e in std::fs::read_dir(&dir)? {
            seen.push(e?.file_name().to_string_lossy().into_owned());
        }
        w.write_all(b"first")
    })
    .unwrap();
    let umask_022 = mode(&path);
    // A more open and a stricter umask, on a file that already exists.
    unsafe { libc::umask(0o002) };
    write_atomic(&path, |w| w.write_all(b"second")).unwrap();
    let umask_002 = mode(&path);
    unsafe { libc::umask(0o077) };
    write_atomic(&path, |w| w.write_all(b"third")).unwrap();
    let umask_077 = mode(&path);
    unsafe { libc::umask(saved) };

    assert_eq!(umask_022, 0o644, "umask 022");
    assert_eq!(umask_002, 0o664, "umask 002");
    assert_eq!(umask_077, 0o600, "umask 077");
    assert_eq!(std::fs::read(&path).unwrap(), b"third");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with(".nn-tmp-") && seen[0].len() > TEMP_PREFIX.len(), "{seen:?}");
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("model.json")]);
    std::fs::remove_dir_all(&dir).unwrap();
}
