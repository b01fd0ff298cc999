//! The record of a training run: one [`EpochLog`] per epoch.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The figures of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Metric name → value, in display order: `loss`, `accuracy`, …, then the
    /// validation figures prefixed `val_`. Losses are sample-weighted epoch means.
    pub metrics: Vec<(String, f64)>,
    /// The learning rate in force during the epoch.
    pub learning_rate: f64,
    /// Wall-clock seconds spent training this epoch (validation excluded).
    pub train_seconds: f64,
    /// Wall-clock seconds spent evaluating the validation set.
    pub val_seconds: f64,
}

impl EpochLog {
    /// The value of metric `name`, if recorded.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|(k, _)| k == name).map(|&(_, v)| v)
    }
}

/// Every epoch's figures, plus how the run ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One entry per completed epoch, in order.
    pub epochs: Vec<EpochLog>,
    /// The seed the run used (printed and saved for reproducibility).
    pub seed: u64,
    /// Why training stopped before the last epoch, if it did.
    pub stopped: Option<String>,
    /// The epoch whose weights the model holds at the end, when a callback restored
    /// earlier weights (EarlyStopping's `restore_best_weights`).
    pub restored_epoch: Option<usize>,
    /// Where training stopped inside an epoch, when a callback stopped it between two
    /// steps ([`Callback::on_batch_end`](crate::Callback::on_batch_end), e.g. on
    /// SIGINT): pass it as [`FitConfig::resume_within_epoch`](crate::FitConfig::resume_within_epoch)
    /// to continue exactly there. Not part of the saved history.
    #[serde(skip)]
    pub interrupted: Option<crate::fit::EpochProgress>,
}

impl History {
    /// The series of metric `name` over epochs (NaN where an epoch lacks it).
    pub fn series(&self, name: &str) -> Vec<f64> {
        self.epochs.iter().map(|e| e.get(name).unwrap_or(f64::NAN)).collect()
    }

    /// The metric names recorded, in first-seen order.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for e in &self.epochs {
            for (k, _) in &e.metrics {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
        names
    }

    /// Writes `epoch,<metrics…>,learning_rate,train_seconds,val_seconds` as CSV,
    /// atomically (a temporary file in the same folder, then a rename).
    ///
    /// # Errors
    /// Any I/O or CSV error, with the path.
    pub fn write_csv(&self, path: &Path) -> Result<(), crate::TrainError> {
        let names = self.metric_names();
        let write = |file: &mut dyn Write| -> std::io::Result<()> {
            let mut w = csv::Writer::from_writer(file);
            let mut header = vec!["epoch".to_string()];
            header.extend(names.iter().cloned());
            header.extend(["learning_rate", "train_seconds", "val_seconds"].map(String::from));
            w.write_record(&header)?;
            for e in &self.epochs {
                let mut row = vec![e.epoch.to_string()];
                row.extend(names.iter().map(|n| e.get(n).map(|v| v.to_string()).unwrap_or_default()));
                row.extend([e.learning_rate, e.train_seconds, e.val_seconds].map(|v| v.to_string()));
                w.write_record(&row)?;
            }
            w.flush()
        };
        nn_tensor::io::write_atomic(path, write).map_err(|e| crate::TrainError::io(path, e))
    }
}

/// Renders the figures of one epoch the way Keras prints them:
/// `loss: 0.2345 - accuracy: 0.9312 - val_loss: …`.
pub fn format_metrics(metrics: &[(String, f64)]) -> String {
    metrics.iter().map(|(k, v)| format!("{k}: {v:.4}")).collect::<Vec<_>>().join(" - ")
}

/// Writes `bytes` to `out` and flushes.
pub(crate) fn write_all(out: &mut dyn Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}
