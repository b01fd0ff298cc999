//! The part of the tune tests' stand-in for training that they share.

use std::path::Path;

use nn_train::tune::{Objective, Trial, TrialOutcome};
use nn_train::TrainError;

/// What a stand-in runner has been asked to do: the trials it ran, when to fail, and
/// the last trial run (the one `save_model` writes).
pub struct FakeTrials {
    /// The trials run, as (id, rung), in order.
    pub calls: Vec<(usize, usize)>,
    /// Fail ("interrupted") instead of running once this many trials have run.
    pub fail_after: Option<usize>,
    /// The last trial run.
    pub last: Option<Trial>,
}

impl FakeTrials {
    pub fn new(fail_after: Option<usize>) -> Self {
        FakeTrials { calls: Vec::new(), fail_after, last: None }
    }

    /// Runs `trial`: fails once `fail_after` trials have run, else records it and
    /// reports the validation loss `val_loss`, an accuracy of `1 / (1 + |val_loss|)`,
    /// the one of the two that `objective` names, the whole epoch budget as run and
    /// best, and `seconds(trials run, this one included)` as its time.
    pub fn run(
        &mut self,
        trial: &Trial,
        objective: &Objective,
        val_loss: f64,
        seconds: impl FnOnce(usize) -> f64,
    ) -> nn_train::Result<TrialOutcome> {
        if self.fail_after == Some(self.calls.len()) {
            return Err(TrainError::Config("interrupted".into()));
        }
        self.calls.push((trial.id, trial.rung));
        self.last = Some(trial.clone());
        let val_accuracy = 1.0 / (1.0 + val_loss.abs());
        let objective = if objective.metric == "val_loss" { val_loss } else { val_accuracy };
        Ok(TrialOutcome {
            best_epoch: trial.epochs,
            epochs_run: trial.epochs,
            objective,
            val_loss,
            val_accuracy,
            seconds: seconds(self.calls.len()),
        })
    }

    /// Creates `dir` and writes the last trial's `model.txt` there (its id, rung
    /// and parameters); returns that trial.
    pub fn save_model_txt(&self, dir: &Path) -> &Trial {
        std::fs::create_dir_all(dir).unwrap();
        let t = self.last.as_ref().unwrap();
        std::fs::write(dir.join("model.txt"), format!("{} {} {:?}", t.id, t.rung, t.params)).unwrap();
        t
    }
}
