//! Fine-tuning for `nn-cli fit` and `nn-cli evaluate`: `--init-from`, `--load`,
//! `--num-classes`, `--freeze`, `--lora-rank`/`--lora-alpha`, `--lr-loaded`,
//! `--head-from`. The work is done by nn-layers' transfer functions
//! ([`Sequential::load_weights_matching`], [`Sequential::with_new_head`],
//! [`Sequential::freeze`], [`Sequential::with_lora`], [`Sequential::merge_lora`]) and
//! nn-optim's [`ParamRules`]; this module turns flags into calls and prints.

use std::path::Path;

use nn_data::Dataset;
use nn_layers::{name_matches, LayerSpec, LoadOptions, LoraConfig, ModelSpec, Sequential};
use nn_optim::{ParamRules, ParamSelector};

use crate::args::RunConfig;
use crate::error::{CliError, Result};

/// The model a run trains and the per-parameter optimizer rules that go with it.
pub struct Prepared {
    /// The model, loaded, cut and frozen as the flags say.
    pub model: Sequential,
    /// Learning-rate multipliers (`--lr-loaded`).
    pub rules: ParamRules,
}

fn is_adapter(name: &str) -> bool {
    matches!(name.rsplit('.').next(), Some("lora_a" | "lora_b"))
}

/// Freezes what one `--freeze` entry names: `a..b`, `a..`, `..b` (layer indices,
/// half-open), `i` (one layer) or a parameter name or prefix. Returns how many
/// parameters it froze.
fn freeze_one(model: &mut Sequential, entry: &str) -> Result<usize> {
    let layers = model.layers().len();
    let bad = |why: String| CliError::Usage(format!("--freeze `{entry}`: {why}"));
    let index = |s: &str| -> Result<usize> {
        s.trim().parse::<usize>().map_err(|_| bad(format!("`{s}` is not a layer index")))
    };
    let range = if let Some((a, b)) = entry.split_once("..") {
        let start = if a.is_empty() { 0 } else { index(a)? };
        let end = if b.is_empty() { layers } else { index(b)? };
        if start >= end || end > layers {
            return Err(bad(format!("the layer range {start}..{end} is empty or beyond the model's {layers} layers")));
        }
        Some(start..end)
    } else if let Ok(i) = entry.trim().parse::<usize>() {
        if i >= layers {
            return Err(bad(format!("the model has {layers} layers (0..{layers})")));
        }
        Some(i..i + 1)
    } else {
        None
    };
    Ok(match range {
        Some(r) => model.freeze_layers(r),
        None => {
            if !model.parameters().iter().any(|p| name_matches(entry, &p.name)) {
                if let Some(i) = model.layer_index(entry.trim()) {
                    return Err(bad(format!("layer {i} ({}) has no parameters to freeze", model.layers()[i].kind())));
                }
                return Err(bad("no layer or parameter has this name or prefix".into()));
            }
            model.freeze(|n| name_matches(entry, n))
        }
    })
}

/// Builds the model of a `fit` run: `default_spec` (from `--model`), or with
/// `--init-from DIR` the saved model's architecture with its weights loaded by name
/// (printing what was loaded, skipped and newly initialised), a new head with
/// `--num-classes`, then `--freeze` and `--lora-rank`. `outputs` is the number of
/// outputs the data needs. Before anything is allocated, the model's estimated
/// memory for one training step at `--batch-size` with `--optimizer`'s slots is
/// checked against `--max-memory` ([`super::check_training`]).
///
/// # Errors
/// [`CliError::Usage`] for flag values that cannot be used (a head that does not
/// fit the data, a bad `--freeze` entry, LoRA on a model without Dense layers, a
/// non-positive `--lr-loaded` or `--lora-alpha`) and for a model over the memory
/// limit, and the loaders' errors.
pub fn build_model(args: &RunConfig, outputs: usize, default_spec: ModelSpec) -> Result<Prepared> {
    let slots = super::optimizer_slots(args.optimizer.optimizer);
    let mut rules = ParamRules::new();
    let mut new_head = None;
    let mut model = match &args.model.init_from {
        None => {
            if args.model.num_classes.is_some() || !args.model.load.is_empty() || args.optimizer.lr_loaded.is_some() {
                return Err(CliError::Usage("--num-classes, --load and --lr-loaded need --init-from".into()));
            }
            super::check_training(&default_spec, args.training.batch_size, slots)?;
            Sequential::new(default_spec, args.training.seed)?
        }
        Some(dir) => {
            // Sized from its description before its weights are read.
            if let Ok(saved) = ModelSpec::read_saved(dir) {
                super::check_training(&saved, args.training.batch_size, slots)?;
            }
            let (source, _) = nn_train::load_model(dir)?;
            let mut model = Sequential::new(source.spec().clone(), args.training.seed)?;
            let mut options = LoadOptions::only(args.model.load.iter().cloned());
            if let Some(k) = args.model.num_classes {
                if k != outputs {
                    return Err(CliError::Usage(format!("--num-classes {k}, but the data has {outputs} classes")));
                }
                let (m, head) = model.with_new_head(k, args.training.seed)?;
                model = m;
                new_head = Some(head);
                // The new head is not loaded, unless --load asks for it by name (then
                // a shape that differs is an error).
                let prefix = model.layer_prefix(head);
                let asked = model.parameters().iter().any(|p| {
                    name_matches(&prefix, &p.name) && args.model.load.iter().any(|l| name_matches(l, &p.name))
                });
                if !asked {
                    options = options.excluding([prefix]);
                }
            }
            let have: usize = model.output_shape().iter().product();
            if have != outputs {
                return Err(CliError::Usage(format!(
                    "the model in {} has {have} outputs, the data needs {outputs}: pass --num-classes {outputs} to replace its head",
                    dir.display()
                )));
            }
            let report = model.load_weights_matching(&nn_layers::saved_weights_path(dir), &options)?;
            print!("{report}");
            if let Some(f) = args.optimizer.lr_loaded {
                if !(f.is_finite() && f >= 0.0) {
                    return Err(CliError::Usage(format!("--lr-loaded must be a number >= 0, got {f}")));
                }
                for name in &report.loaded {
                    rules = rules.lr_multiplier(ParamSelector::exact(name.clone()), f);
                }
                println!("learning rate × {f} for the {} loaded tensors", report.loaded.len());
            }
            model
        }
    };
    for entry in &args.model.freeze {
        let n = freeze_one(&mut model, entry)?;
        println!("froze {n} tensors ({entry})");
    }
    if let Some(rank) = args.model.lora_rank {
        let alpha = args.model.lora_alpha.unwrap_or(rank as f64);
        if rank == 0 || !(alpha.is_finite() && alpha > 0.0) {
            return Err(CliError::Usage(format!(
                "--lora-rank must be at least 1 and --lora-alpha a positive number, got {rank} and {alpha}"
            )));
        }
        let dense: Vec<usize> = model
            .spec()
            .layers
            .iter()
            .enumerate()
            .filter(|(i, l)| matches!(l.layer, LayerSpec::Dense(_)) && Some(*i) != new_head)
            .map(|(i, _)| i)
            .collect();
        if dense.is_empty() {
            return Err(CliError::Usage("--lora-rank: the model has no Dense layer to adapt".into()));
        }
        model = model.with_lora(|i| dense.contains(&i), LoraConfig::new(rank, alpha), args.training.seed)?;
        // Only the adapters (and a new head) train.
        let head = new_head.map(|h| model.layer_prefix(h));
        model.freeze(|n| !is_adapter(n) && !head.as_deref().is_some_and(|h| name_matches(h, n)));
        let names: Vec<String> = dense.iter().map(|&i| model.layer_prefix(i)).collect();
        println!("LoRA rank {rank}, alpha {alpha} on Dense {}; everything else frozen", names.join(", "));
    }
    Ok(Prepared { model, rules })
}

/// For a model with LoRA adapters: writes the merged model (adapters folded into the
/// kernels) to `out/merged` and prints the largest difference between the two
/// models' predictions on `data`.
///
/// # Errors
/// The merge's and the writers' errors.
pub fn export_merged(model: &Sequential, out: &Path, metadata: &serde_json::Value, data: &Dataset) -> Result<()> {
    let merged = model.merge_lora()?;
    let dir = out.join("merged");
    merged.save_with_metadata(&dir, metadata)?;
    let x = data.features();
    let a = nn_train::predict(model, &x, 1000)?.outputs;
    let b = nn_train::predict(&merged, &x, 1000)?.outputs;
    let diff = a.array().iter().zip(b.array().iter()).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
    println!(
        "merged the LoRA adapters into the kernels: {} (max |Δ output| on {} samples: {diff:.2e})",
        dir.display(),
        data.len()
    );
    Ok(())
}

/// `evaluate --head-from DIR`: replaces `model`'s output head (the last Dense layer)
/// by the one of the model saved in `dir`.
///
/// # Errors
/// [`CliError::Usage`] when the heads differ in index or shape, or `model`'s head has
/// adapters (evaluate its `merged` folder instead).
pub fn swap_head(model: &mut Sequential, dir: &Path) -> Result<()> {
    let (other, _) = super::load_model(dir)?;
    let head = other
        .spec()
        .layers
        .iter()
        .rposition(|l| matches!(l.layer, LayerSpec::Dense(_)))
        .ok_or_else(|| CliError::Usage(format!("--head-from {}: that model has no Dense layer", dir.display())))?;
    let prefix = other.layer_prefix(head);
    if model.parameters().iter().any(|p| name_matches(&prefix, &p.name) && is_adapter(&p.name)) {
        return Err(CliError::Usage(format!(
            "--head-from: {prefix} of this model has LoRA adapters; evaluate the merged model (its `merged` folder)"
        )));
    }
    for p in other.parameters().iter().filter(|p| name_matches(&prefix, &p.name)) {
        model.set_parameter(&p.name, (*p.value).clone()).map_err(|e| {
            CliError::Usage(format!(
                "--head-from {}: {e} (the heads must have the same place and shape)",
                dir.display()
            ))
        })?;
    }
    println!("head {prefix} taken from {}", dir.display());
    Ok(())
}
