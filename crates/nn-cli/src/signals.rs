//! Signals: `SIGPIPE` for commands that print, `SIGINT`/`SIGTERM` for `fit`.
//!
//! - `SIGPIPE`: the Rust runtime ignores it, so writing to a closed pipe
//!   (`nn-cli summary | head -1`) makes `println!` panic (exit 101, a backtrace).
//!   [`sigpipe_default`] restores the default action, so the process ends quietly
//!   as `cat` does; `serve` keeps it ignored ([`sigpipe_ignore`]), since a client
//!   that disconnects must not kill the server.
//! - `SIGINT` (Ctrl-C) and `SIGTERM` (`kill`, a container stop): after [`install`]
//!   the first one only records which signal arrived; [`StopOnSignal`] then stops
//!   training when the current step is done, `fit` writes a checkpoint of exactly
//!   that point (a resumed run continues at the next step), and every file is
//!   written completely (see `nn_tensor::io::write_atomic`): nothing half-written or
//!   temporary is left.
//!   A second one kills the process at once with the signal's default action (for a
//!   run stuck in a long step); `main` exits with [`exit_code`] (130 or 143) after
//!   a clean stop, as a shell reports a process killed by the signal.
//!
//! Uses the `signal-hook` crate (its handlers only store to atomics, which is
//! async-signal-safe).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use nn_train::{Callback, CallbackCtx, Control, EpochLog};
use signal_hook::consts::{SIGINT, SIGTERM};

/// A signal number (`libc::c_int`).
pub type Signal = std::ffi::c_int;

/// The signals [`install`] handles: `SIGINT` and `SIGTERM`.
pub const HANDLED: [Signal; 2] = [SIGINT, SIGTERM];

/// The last handled signal that arrived (0: none yet), set by the handlers.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);
/// Set by the first handled signal: a second one then kills the process.
static ARMED: AtomicBool = AtomicBool::new(false);
/// Whether the handlers are registered (they are registered once per process).
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Registers the `SIGINT` and `SIGTERM` handlers (once per process; later calls
/// return the same flag) and returns the flag they set: 0 until a signal arrives,
/// then the number of the last one (read it with [`signal_in`] or [`received`]).
///
/// After this, the first `SIGINT` or `SIGTERM` no longer ends the process: the
/// program must poll the flag (as [`StopOnSignal`] does) and stop by itself. A
/// second one (either) ends the process at once with the default action of the
/// signal (the shell then reports exit status 130 or 143).
///
/// # Errors
/// The operating system's error if a handler cannot be registered (some handlers
/// may then be registered already; the signals keep their default action
/// otherwise).
pub fn install() -> std::io::Result<&'static AtomicUsize> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if !*installed {
        for signal in HANDLED {
            // Registered first, so that it sees ARMED as the previous signal left it:
            // false on the first signal (nothing happens), true on the second.
            signal_hook::flag::register_conditional_default(signal, &ARMED)?;
            signal_hook::flag::register_usize(signal, &RECEIVED, signal as usize)?;
            signal_hook::flag::register(signal, &ARMED)?;
        }
        *installed = true;
    }
    Ok(&RECEIVED)
}

/// The signal recorded in `flag` (as set by the handlers of [`install`]), if any.
pub fn signal_in(flag: &AtomicUsize) -> Option<Signal> {
    match flag.load(Ordering::SeqCst) {
        0 => None,
        s => Signal::try_from(s).ok(),
    }
}

/// The last `SIGINT` or `SIGTERM` that arrived since [`install`], if any (always
/// `None` when `install` was not called).
pub fn received() -> Option<Signal> {
    signal_in(&RECEIVED)
}

/// The exit status of a process that stops because of `signal`: `128 + signal`, as
/// shells report a process killed by a signal (130 for `SIGINT`, 143 for `SIGTERM`);
/// 255 for a number that does not fit.
pub fn exit_code(signal: Signal) -> u8 {
    signal.checked_add(128).and_then(|c| u8::try_from(c).ok()).filter(|&c| c > 128).unwrap_or(u8::MAX)
}

/// The conventional name of `signal`: `SIGINT`, `SIGTERM`, ... (`signal N` for one
/// without a name).
pub fn name(signal: Signal) -> String {
    match signal_hook::low_level::signal_name(signal) {
        Some(n) => n.to_string(),
        None => format!("signal {signal}"),
    }
}

/// The line `fit` prints when `signal` stopped training: what happened, and, with an
/// `--out` folder `out`, that a checkpoint of where training stopped (`at`, e.g.
/// `step 12 of epoch 3`) is in it and how to continue, e.g. `interrupted by SIGINT
/// at step 12 of epoch 3: checkpoint written to runs/a/checkpoint; continue with:
/// nn-cli fit --resume runs/a`.
pub fn message(signal: Signal, at: &str, out: Option<&Path>) -> String {
    let what = format!("interrupted by {} {at}", name(signal));
    match out {
        Some(dir) => format!(
            "{what}: checkpoint written to {}; continue with: nn-cli fit --resume {}",
            dir.join("checkpoint").display(),
            dir.display()
        ),
        None => format!("{what}: no model saved (no --out folder)"),
    }
}

/// A training callback that stops `fit` once `SIGINT` or `SIGTERM` has arrived:
/// after the step (batch) in progress updated the weights, or at the end of an
/// epoch (after the other callbacks, such as the checkpoint, ran for it).
///
/// The stop reason, printed by `fit` and kept in `History::stopped`, names the
/// signal, e.g. `SIGINT received: training stopped after batch 12 of epoch 3`.
#[derive(Debug, Clone, Copy)]
pub struct StopOnSignal {
    flag: &'static AtomicUsize,
}

impl StopOnSignal {
    /// A callback polling `flag` (the one [`install`] returns).
    pub fn new(flag: &'static AtomicUsize) -> Self {
        StopOnSignal { flag }
    }
}

impl Callback for StopOnSignal {
    fn on_batch_end(&mut self, epoch: usize, batch: usize) -> Control {
        match signal_in(self.flag) {
            Some(s) => {
                Control::Stop(format!("{} received: training stopped after batch {batch} of epoch {epoch}", name(s)))
            }
            None => Control::Continue,
        }
    }

    fn on_epoch_end(&mut self, log: &EpochLog, _ctx: &mut CallbackCtx<'_>) -> nn_train::Result<Control> {
        Ok(match signal_in(self.flag) {
            Some(s) => Control::Stop(format!("{} received: training stopped after epoch {}", name(s), log.epoch)),
            None => Control::Continue,
        })
    }
}

/// Restores the default action of `SIGPIPE` (end the process), which the Rust
/// runtime replaces by "ignore": writing to a closed pipe then ends the process
/// quietly instead of making `println!` panic. No-op off Unix.
pub fn sigpipe_default() {
    #[cfg(unix)]
    // SAFETY: signal(2) with SIG_DFL installs no handler; called before any thread
    // that could be writing exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Ignores `SIGPIPE` (the Rust runtime's setting): a write to a closed pipe or
/// socket returns an error (`EPIPE`) instead of ending the process, as a server
/// needs. No-op off Unix.
pub fn sigpipe_ignore() {
    #[cfg(unix)]
    // SAFETY: as in `sigpipe_default`.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_stops_only_once_a_signal_is_recorded() {
        static FLAG: AtomicUsize = AtomicUsize::new(0);
        let mut cb = StopOnSignal::new(&FLAG);
        assert_eq!(cb.on_batch_end(1, 5), Control::Continue);
        FLAG.store(SIGTERM as usize, Ordering::SeqCst);
        assert_eq!(
            cb.on_batch_end(2, 7),
            Control::Stop("SIGTERM received: training stopped after batch 7 of epoch 2".into())
        );
        assert_eq!(signal_in(&FLAG), Some(SIGTERM));
    }

    #[test]
    fn exit_codes_and_messages() {
        assert_eq!(exit_code(SIGINT), 130);
        assert_eq!(exit_code(SIGTERM), 143);
        assert_eq!(exit_code(-1), 255);
        assert_eq!(exit_code(200), 255);
        assert_eq!(name(SIGINT), "SIGINT");
        assert_eq!(name(SIGTERM), "SIGTERM");
        assert_eq!(
            message(SIGINT, "at step 12 of epoch 3", Some(Path::new("runs/a"))),
            "interrupted by SIGINT at step 12 of epoch 3: checkpoint written to runs/a/checkpoint; \
             continue with: nn-cli fit --resume runs/a"
        );
        assert_eq!(
            message(SIGTERM, "after epoch 2", None),
            "interrupted by SIGTERM after epoch 2: no model saved (no --out folder)"
        );
    }

    /// The only test that raises a signal: after the first, a second one would end
    /// the test process, so the flags are reset at the end.
    #[test]
    fn a_raised_signal_is_recorded_and_stops_the_callback() {
        let flag = install().unwrap();
        assert!(std::ptr::eq(flag, install().unwrap()), "install registers once");
        let mut cb = StopOnSignal::new(flag);
        assert_eq!(cb.on_batch_end(1, 1), Control::Continue);
        assert_eq!(received(), None);
        // raise(3) runs the handler on this thread before it returns; the process
        // goes on (the first signal only sets the flags).
        signal_hook::low_level::raise(SIGINT).unwrap();
        assert_eq!(received(), Some(SIGINT));
        assert!(ARMED.load(Ordering::SeqCst), "a second signal would now end the process");
        assert_eq!(
            cb.on_batch_end(3, 12),
            Control::Stop("SIGINT received: training stopped after batch 12 of epoch 3".into())
        );
        // Disarm, so no later signal in this test process is taken as a second one.
        ARMED.store(false, Ordering::SeqCst);
        signal_hook::low_level::raise(SIGTERM).unwrap();
        assert_eq!(received(), Some(SIGTERM), "the last signal is recorded");
        ARMED.store(false, Ordering::SeqCst);
        RECEIVED.store(0, Ordering::SeqCst);
    }
}
