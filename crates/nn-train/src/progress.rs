//! Keras-style progress output.
//!
//! On a terminal a live bar is redrawn in place (throttled by indicatif to a few
//! redraws a second); otherwise one plain line is printed per epoch, e.g.
//!
//! ```text
//! Epoch 1/3 - 375/375 - 9s 23ms/step - loss: 0.2345 - accuracy: 0.9312 - val_loss: 0.1010 - val_accuracy: 0.9712
//! ```
//!
//! Metrics shown are running sample-weighted means over the epoch so far. The first
//! step of each epoch (warm-up: buffer allocation, page faults) is left out of the
//! time per step, as Keras does.

use std::io::{IsTerminal, Write};
use std::str::FromStr;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::TrainError;
use crate::history::{format_metrics, write_all, EpochLog};

/// How much `fit` prints: Keras's `verbose` argument of `Model.fit`.
///
/// | Keras `verbose` | variant | output |
/// | --- | --- | --- |
/// | `0` | [`Verbosity::Silent`] | nothing |
/// | `1`, `"auto"` | [`Verbosity::Auto`] | a live progress bar on a terminal, one line per epoch otherwise |
/// | `2` | [`Verbosity::Lines`] | one line per epoch |
///
/// Parse it from those numbers with `Verbosity::try_from(2u8)` or from the strings
/// `"0"`, `"1"`, `"2"`, `"auto"` with `"auto".parse::<Verbosity>()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Nothing (Keras `verbose=0`).
    Silent,
    /// A live bar on a terminal, one line per epoch otherwise (Keras `verbose=1` and
    /// `verbose="auto"`; Keras draws its bar even when the output is not a terminal,
    /// which fills log files with redraws).
    #[default]
    Auto,
    /// One line per epoch, even on a terminal (Keras `verbose=2`).
    Lines,
}

impl TryFrom<u8> for Verbosity {
    type Error = TrainError;

    /// `0` → [`Verbosity::Silent`], `1` → [`Verbosity::Auto`], `2` →
    /// [`Verbosity::Lines`].
    ///
    /// # Errors
    /// [`TrainError::Config`] for any other number.
    fn try_from(level: u8) -> Result<Self, TrainError> {
        match level {
            0 => Ok(Verbosity::Silent),
            1 => Ok(Verbosity::Auto),
            2 => Ok(Verbosity::Lines),
            _ => Err(TrainError::Config(format!("verbosity must be 0, 1, 2 or \"auto\", got {level}"))),
        }
    }
}

impl FromStr for Verbosity {
    type Err = TrainError;

    /// `"0"`, `"1"`, `"2"` as [`Verbosity::try_from`], and `"auto"` (any case) →
    /// [`Verbosity::Auto`]; surrounding whitespace is ignored.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the text for anything else.
    fn from_str(s: &str) -> Result<Self, TrainError> {
        match s.trim() {
            "0" => Ok(Verbosity::Silent),
            "1" => Ok(Verbosity::Auto),
            "2" => Ok(Verbosity::Lines),
            t if t.eq_ignore_ascii_case("auto") => Ok(Verbosity::Auto),
            _ => Err(TrainError::Config(format!("verbosity must be 0, 1, 2 or \"auto\", got {s:?}"))),
        }
    }
}

/// The progress display of one `fit` run.
pub struct Progress {
    verbosity: Verbosity,
    epochs: usize,
    steps: usize,
    bar: Option<ProgressBar>,
    epoch_start: Instant,
    first_step_done: Option<Instant>,
    out: Box<dyn Write + Send>,
}

impl Progress {
    /// A display for `epochs` epochs of `steps` batches each, writing plain lines to
    /// standard output.
    pub fn new(verbosity: Verbosity, epochs: usize, steps: usize) -> Self {
        Self::with_writer(verbosity, epochs, steps, Box::new(std::io::stdout()))
    }

    /// As [`Progress::new`], writing plain lines to `out` (used by tests).
    pub fn with_writer(verbosity: Verbosity, epochs: usize, steps: usize, out: Box<dyn Write + Send>) -> Self {
        Progress { verbosity, epochs, steps, bar: None, epoch_start: Instant::now(), first_step_done: None, out }
    }

    fn live(&self) -> bool {
        self.verbosity == Verbosity::Auto && std::io::stdout().is_terminal()
    }

    /// Marks the start of `epoch` (1-based).
    pub fn start_epoch(&mut self, epoch: usize) {
        self.epoch_start = Instant::now();
        self.first_step_done = None;
        if self.live() {
            let _ = write_all(&mut self.out, format!("Epoch {epoch}/{}\n", self.epochs).as_bytes());
            let bar = ProgressBar::with_draw_target(Some(self.steps as u64), ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("{pos}/{len} {wide_bar} {elapsed} {msg}")
                    .expect("static template")
                    .progress_chars("━━ "),
            );
            self.bar = Some(bar);
        }
    }

    /// Records that batch `step` (1-based) finished, with the running epoch metrics.
    pub fn step(&mut self, step: usize, running: &[(String, f64)]) {
        if step == 1 {
            self.first_step_done = Some(Instant::now());
        }
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64);
            bar.set_message(format!("{} - {}", self.per_step(step), format_metrics(running)));
        }
    }

    /// Seconds per step so far, excluding the first step.
    fn per_step(&self, steps_done: usize) -> String {
        let per = match self.first_step_done {
            Some(t) if steps_done > 1 => t.elapsed().as_secs_f64() / (steps_done - 1) as f64,
            _ => self.epoch_start.elapsed().as_secs_f64(),
        };
        if per >= 1.0 {
            format!("{per:.1}s/step")
        } else if per >= 1e-3 {
            format!("{:.0}ms/step", per * 1e3)
        } else {
            format!("{:.0}us/step", per * 1e6)
        }
    }

    /// Prints the epoch's final line.
    pub fn end_epoch(&mut self, log: &EpochLog) {
        if self.verbosity == Verbosity::Silent {
            return;
        }
        let secs = log.train_seconds + log.val_seconds;
        let body = format!(
            "{}/{} - {:.0}s {} - {}",
            self.steps,
            self.steps,
            secs,
            self.per_step(self.steps),
            format_metrics(&log.metrics)
        );
        let line = match self.bar.take() {
            Some(bar) => {
                bar.finish_and_clear();
                format!("{body}\n")
            }
            None => format!("Epoch {}/{} - {body}\n", log.epoch, self.epochs),
        };
        let _ = write_all(&mut self.out, line.as_bytes());
    }

    /// Prints a free-form line (e.g. a callback's message), unless silent.
    pub fn message(&mut self, text: &str) {
        if self.verbosity == Verbosity::Silent {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let _ = write_all(&mut self.out, format!("{text}\n").as_bytes());
            }
        }
    }
}
