//! Learning-rate schedules: step-indexed ones ([`LrSchedule`]) and reduce-on-plateau
//! driven by a monitored metric ([`ReduceLrOnPlateau`]). Both are serde-serialisable,
//! so a checkpoint can carry them.

use nn_tensor::Element;
use serde::{Deserialize, Serialize};

use crate::error::{check, check_non_negative, Result};
use crate::optimizer::Optimizer;

/// A learning rate as a function of the step index, with Keras's formulas
/// (`keras.optimizers.schedules`).
///
/// The step index is what the caller counts: use [`LrSchedule::apply`] to evaluate
/// it at the optimizer's [`iterations`](Optimizer::iterations) (batches, Keras's
/// convention) before each step, or call [`LrSchedule::learning_rate`] with an epoch
/// number once per epoch (PyTorch's usual `StepLR` use). Do not combine a step
/// schedule with [`ReduceLrOnPlateau`] on one optimizer: each would overwrite the
/// other's rate (Keras refuses the combination too).
///
/// Serialises as `{"kind": "exponential_decay", "initial_learning_rate": ..., ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// `lr(step) = learning_rate`.
    Constant {
        /// The rate.
        learning_rate: f64,
    },
    /// `lr(step) = initial_learning_rate · gamma^⌊step / step_size⌋` (PyTorch `StepLR`).
    StepDecay {
        /// The rate at step 0.
        initial_learning_rate: f64,
        /// Steps between drops, `> 0`.
        step_size: u64,
        /// Factor per drop, `>= 0`.
        gamma: f64,
    },
    /// `lr(step) = initial_learning_rate · decay_rate^(step / decay_steps)`, with
    /// `⌊step / decay_steps⌋` when `staircase` (Keras `ExponentialDecay`).
    ExponentialDecay {
        /// The rate at step 0.
        initial_learning_rate: f64,
        /// Steps per factor of `decay_rate`, `> 0`.
        decay_steps: u64,
        /// Factor per `decay_steps` steps, `>= 0`.
        decay_rate: f64,
        /// Decay in whole periods only.
        staircase: bool,
    },
    /// Cosine decay (Loshchilov & Hutter 2017, SGDR, without restarts) after an
    /// optional linear warm-up, as Keras's `CosineDecay`:
    ///
    /// ```text
    /// no warm-up (warmup_target = None):
    ///   s = min(step, decay_steps)
    ///   lr = initial · ((1 − alpha)·½(1 + cos(π·s / decay_steps)) + alpha)
    /// with warm-up to `target` over `warmup_steps`:
    ///   s = min(step, warmup_steps + decay_steps)
    ///   s < warmup_steps:  lr = initial + (target − initial)·s / warmup_steps
    ///   otherwise:         lr = target · ((1 − alpha)·½(1 + cos(π·(s − warmup_steps) / decay_steps)) + alpha)
    /// ```
    CosineDecay {
        /// The rate at step 0 (where warm-up starts, or decay starts without warm-up).
        initial_learning_rate: f64,
        /// Length of the decay, `> 0`.
        decay_steps: u64,
        /// Final rate as a fraction of the decay's starting rate, in `[0, 1]`.
        alpha: f64,
        /// Length of the linear warm-up (ignored without `warmup_target`).
        warmup_steps: u64,
        /// The rate warm-up reaches and decay starts from; `None`: no warm-up.
        warmup_target: Option<f64>,
    },
}

impl LrSchedule {
    /// A constant rate.
    pub fn constant(learning_rate: f64) -> Self {
        LrSchedule::Constant { learning_rate }
    }

    /// Step decay: multiply by `gamma` every `step_size` steps.
    pub fn step_decay(initial_learning_rate: f64, step_size: u64, gamma: f64) -> Self {
        LrSchedule::StepDecay { initial_learning_rate, step_size, gamma }
    }

    /// Exponential decay by `decay_rate` per `decay_steps` steps.
    pub fn exponential_decay(initial_learning_rate: f64, decay_steps: u64, decay_rate: f64, staircase: bool) -> Self {
        LrSchedule::ExponentialDecay { initial_learning_rate, decay_steps, decay_rate, staircase }
    }

    /// Cosine decay from `initial_learning_rate` to `alpha · initial_learning_rate`
    /// over `decay_steps`, no warm-up.
    pub fn cosine_decay(initial_learning_rate: f64, decay_steps: u64, alpha: f64) -> Self {
        LrSchedule::CosineDecay { initial_learning_rate, decay_steps, alpha, warmup_steps: 0, warmup_target: None }
    }

    /// Linear warm-up from `initial_learning_rate` to `peak` over `warmup_steps`, then
    /// cosine decay from `peak` to `alpha · peak` over `decay_steps`.
    pub fn cosine_decay_with_warmup(
        initial_learning_rate: f64,
        warmup_steps: u64,
        peak: f64,
        decay_steps: u64,
        alpha: f64,
    ) -> Self {
        LrSchedule::CosineDecay { initial_learning_rate, decay_steps, alpha, warmup_steps, warmup_target: Some(peak) }
    }

    /// Checks the parameters (also needed after deserialising).
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter)
    /// for a negative or non-finite rate or factor, a zero period, or `alpha` outside
    /// `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        let o = "schedule";
        match *self {
            LrSchedule::Constant { learning_rate } => check_non_negative(o, "learning_rate", learning_rate),
            LrSchedule::StepDecay { initial_learning_rate, step_size, gamma } => {
                check_non_negative(o, "initial_learning_rate", initial_learning_rate)?;
                check(o, "step_size", step_size as f64, step_size > 0, "step_size > 0")?;
                check_non_negative(o, "gamma", gamma)
            }
            LrSchedule::ExponentialDecay { initial_learning_rate, decay_steps, decay_rate, .. } => {
                check_non_negative(o, "initial_learning_rate", initial_learning_rate)?;
                check(o, "decay_steps", decay_steps as f64, decay_steps > 0, "decay_steps > 0")?;
                check_non_negative(o, "decay_rate", decay_rate)
            }
            LrSchedule::CosineDecay { initial_learning_rate, decay_steps, alpha, warmup_steps, warmup_target } => {
                check_non_negative(o, "initial_learning_rate", initial_learning_rate)?;
                check(o, "decay_steps", decay_steps as f64, decay_steps > 0, "decay_steps > 0")?;
                check(o, "alpha", alpha, (0.0..=1.0).contains(&alpha), "a value in [0, 1]")?;
                if let Some(t) = warmup_target {
                    check_non_negative(o, "warmup_target", t)?;
                    check(
                        o,
                        "warmup_steps",
                        warmup_steps as f64,
                        warmup_steps > 0,
                        "warmup_steps > 0 with a warmup_target",
                    )?;
                }
                Ok(())
            }
        }
    }

    /// The learning rate at `step` (0 for the first update), from the closed forms
    /// above, computed in `f64`.
    pub fn learning_rate(&self, step: u64) -> f64 {
        let s = step as f64;
        match *self {
            LrSchedule::Constant { learning_rate } => learning_rate,
            LrSchedule::StepDecay { initial_learning_rate, step_size, gamma } => {
                initial_learning_rate * gamma.powf((step / step_size.max(1)) as f64)
            }
            LrSchedule::ExponentialDecay { initial_learning_rate, decay_steps, decay_rate, staircase } => {
                let p = s / decay_steps as f64;
                initial_learning_rate * decay_rate.powf(if staircase { p.floor() } else { p })
            }
            LrSchedule::CosineDecay { initial_learning_rate, decay_steps, alpha, warmup_steps, warmup_target } => {
                let decay = |from: f64, s: f64| {
                    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * s / decay_steps as f64).cos());
                    from * ((1.0 - alpha) * cosine + alpha)
                };
                match warmup_target {
                    None => decay(initial_learning_rate, s.min(decay_steps as f64)),
                    Some(target) => {
                        let w = warmup_steps as f64;
                        let s = s.min(w + decay_steps as f64);
                        if s < w {
                            initial_learning_rate + (target - initial_learning_rate) * (s / w)
                        } else {
                            decay(target, s - w)
                        }
                    }
                }
            }
        }
    }

    /// Sets `optimizer`'s learning rate to this schedule's value at its current
    /// [`iterations`](Optimizer::iterations) and returns it. Call before each step.
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter)
    /// when the rate is negative or not finite (an invalid schedule).
    pub fn apply<T: Element>(&self, optimizer: &mut dyn Optimizer<T>) -> Result<f64> {
        let lr = self.learning_rate(optimizer.iterations());
        optimizer.set_learning_rate(lr)?;
        Ok(lr)
    }
}

/// Whether a smaller or a larger monitored value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateauMode {
    /// Smaller is better (losses).
    Min,
    /// Larger is better (accuracies).
    Max,
    /// Keras's rule: `Max` if the monitor's name contains `acc`, else `Min`.
    Auto,
}

/// Reduces the learning rate when a monitored metric stops improving, with Keras's
/// `ReduceLROnPlateau` semantics. Call [`observe`](ReduceLrOnPlateau::observe) (or
/// [`apply`](ReduceLrOnPlateau::apply)) once per epoch with the metric:
///
/// ```text
/// improved = current < best − min_delta        (mode min)
///          = current > best + min_delta        (mode max)
/// if cooldown_counter > 0: cooldown_counter −= 1; wait = 0
/// if improved:             best = current; wait = 0
/// else if not in cooldown: wait += 1
///     if wait >= patience and lr > min_lr:
///         lr = max(lr · factor, min_lr); cooldown_counter = cooldown; wait = 0
/// ```
///
/// `best` starts at +∞ (min) or −∞ (max). A NaN metric never counts as an
/// improvement. The struct holds both the settings and the state (`best`, `wait`,
/// `cooldown_counter`) and serialises both, so a checkpoint resumes it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReduceLrOnPlateau {
    /// Name of the monitored metric (for the training loop and for `Auto` mode),
    /// Keras's default `val_loss`.
    pub monitor: String,
    /// Direction of improvement.
    pub mode: PlateauMode,
    /// `new_lr = lr · factor`, in `(0, 1)`; Keras's default 0.1.
    pub factor: f64,
    /// Epochs without improvement before a reduction; default 10.
    pub patience: u64,
    /// Smallest change that counts as improvement, `>= 0`; default `1e-4`.
    pub min_delta: f64,
    /// Epochs to wait after a reduction before counting again; default 0.
    pub cooldown: u64,
    /// Lower bound on the rate, `>= 0`; default 0.
    pub min_lr: f64,
    /// Best value seen (±∞ before the first).
    #[serde(with = "extended_f64")]
    best: f64,
    /// Epochs without improvement.
    wait: u64,
    /// Epochs of cooldown left.
    cooldown_counter: u64,
}

impl Default for ReduceLrOnPlateau {
    fn default() -> Self {
        ReduceLrOnPlateau {
            monitor: "val_loss".to_string(),
            mode: PlateauMode::Auto,
            factor: 0.1,
            patience: 10,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            best: f64::INFINITY,
            wait: 0,
            cooldown_counter: 0,
        }
    }
}

impl ReduceLrOnPlateau {
    /// Keras's defaults: monitor `val_loss`, mode auto, factor 0.1, patience 10,
    /// min_delta 1e-4, cooldown 0, min_lr 0.
    pub fn new() -> Self {
        ReduceLrOnPlateau::default()
    }

    /// Sets the monitored metric's name (and with it the `Auto` direction).
    pub fn with_monitor(mut self, monitor: impl Into<String>) -> Self {
        self.monitor = monitor.into();
        self.reset();
        self
    }

    /// Sets the direction of improvement.
    pub fn with_mode(mut self, mode: PlateauMode) -> Self {
        self.mode = mode;
        self.reset();
        self
    }

    /// Sets the reduction factor.
    pub fn with_factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Sets the patience in epochs.
    pub fn with_patience(mut self, patience: u64) -> Self {
        self.patience = patience;
        self
    }

    /// Sets the smallest change that counts as improvement.
    pub fn with_min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta;
        self
    }

    /// Sets the cooldown in epochs.
    pub fn with_cooldown(mut self, cooldown: u64) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Sets the lower bound on the rate.
    pub fn with_min_lr(mut self, min_lr: f64) -> Self {
        self.min_lr = min_lr;
        self
    }

    /// Whether larger values are better, after resolving `Auto`.
    pub fn maximizes(&self) -> bool {
        match self.mode {
            PlateauMode::Min => false,
            PlateauMode::Max => true,
            PlateauMode::Auto => self.monitor.contains("acc"),
        }
    }

    /// Forgets the best value, the wait and the cooldown (Keras does this at the
    /// start of `fit`).
    pub fn reset(&mut self) {
        self.best = if self.maximizes() { f64::NEG_INFINITY } else { f64::INFINITY };
        self.wait = 0;
        self.cooldown_counter = 0;
    }

    /// The best value seen so far (±∞ before the first).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Epochs since the last improvement (reset by a reduction and during cooldown).
    pub fn wait(&self) -> u64 {
        self.wait
    }

    /// Epochs of cooldown left.
    pub fn cooldown_counter(&self) -> u64 {
        self.cooldown_counter
    }

    /// Checks the settings (also needed after deserialising).
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter)
    /// for `factor` outside `(0, 1)` or a negative or non-finite `min_delta` or `min_lr`.
    pub fn validate(&self) -> Result<()> {
        let f = self.factor;
        check("reduce_lr_on_plateau", "factor", f, f > 0.0 && f < 1.0, "a value in (0, 1)")?;
        check_non_negative("reduce_lr_on_plateau", "min_delta", self.min_delta)?;
        check_non_negative("reduce_lr_on_plateau", "min_lr", self.min_lr)
    }

    /// Records one epoch's `metric` and returns the learning rate to use from now on
    /// (`current_lr` or a reduced one).
    ///
    /// # Errors
    /// As [`ReduceLrOnPlateau::validate`].
    pub fn observe(&mut self, metric: f64, current_lr: f64) -> Result<f64> {
        self.validate()?;
        let in_cooldown = self.cooldown_counter > 0;
        if in_cooldown {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        let improved =
            if self.maximizes() { metric > self.best + self.min_delta } else { metric < self.best - self.min_delta };
        let mut lr = current_lr;
        if improved {
            self.best = metric;
            self.wait = 0;
        } else if self.cooldown_counter == 0 {
            self.wait += 1;
            if self.wait >= self.patience && current_lr > self.min_lr {
                lr = (current_lr * self.factor).max(self.min_lr);
                self.cooldown_counter = self.cooldown;
                self.wait = 0;
            }
        }
        Ok(lr)
    }

    /// [`observe`](ReduceLrOnPlateau::observe) with `optimizer`'s learning rate, which
    /// it then sets. Returns whether the rate was reduced.
    ///
    /// # Errors
    /// As [`ReduceLrOnPlateau::validate`].
    pub fn apply<T: Element>(&mut self, metric: f64, optimizer: &mut dyn Optimizer<T>) -> Result<bool> {
        let old = optimizer.learning_rate();
        let new = self.observe(metric, old)?;
        optimizer.set_learning_rate(new)?;
        Ok(new != old)
    }
}

/// Serialises an `f64` that may be infinite or NaN: finite values as JSON numbers,
/// others as the strings `"inf"`, `"-inf"`, `"nan"` (JSON numbers cannot hold them).
mod extended_f64 {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else if x.is_nan() {
            s.serialize_str("nan")
        } else if *x > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(x) => Ok(x),
            Repr::Text(t) => match t.as_str() {
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                "nan" => Ok(f64::NAN),
                other => {
                    Err(D::Error::custom(format!("expected a number, \"inf\", \"-inf\" or \"nan\", got {other:?}")))
                }
            },
        }
    }
}
