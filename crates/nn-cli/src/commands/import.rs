//! `nn-cli import`: an ONNX file (for example a PyTorch MLP or CNN written by
//! `torch.onnx.export`) as an nn model folder, the one `nn-cli fit --out` writes, so
//! `evaluate`, `predict`, `serve` and `fit --init-from` work on it.

use std::path::PathBuf;

use clap::Args;

use crate::error::{CliError, Result};

/// `nn-cli import` flags.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The ONNX file to read (opsets 13 to 21, operators nn has; see the README).
    #[arg(long)]
    pub from: PathBuf,
    /// The model folder to write (model.json and weights.safetensors).
    #[arg(long)]
    pub out: PathBuf,
}

/// `nn-cli import`: reads the file, converts the graph, saves the model folder and
/// prints its layers and what changed (an NCHW input now takes NHWC images).
///
/// # Errors
/// [`CliError::Io`] when the file cannot be read; [`CliError::Usage`] with the
/// importer's one-line reason (every unsupported operator by name, a malformed or
/// hostile file) or an `--out` that exists and is not an empty folder; the saver's
/// errors when the folder cannot be written.
pub fn run(args: ImportArgs) -> Result<()> {
    // A new folder, or an empty one: never over a run or any other files (a model
    // pair written over a run would sit beside that run's run.json and checkpoint).
    if args.out.exists() {
        let empty = args.out.is_dir() && std::fs::read_dir(&args.out).is_ok_and(|mut d| d.next().is_none());
        if !empty {
            return Err(CliError::Usage(format!(
                "--out {}: already exists and is not an empty folder; import writes a new model folder (choose another --out)",
                args.out.display()
            )));
        }
    }
    let bytes = std::fs::read(&args.from).map_err(|e| CliError::io(&args.from, e))?;
    let imported = nn_onnx::import(&bytes).map_err(|e| CliError::Usage(format!("{}: {e}", args.from.display())))?;
    let model = &imported.model;
    model.save_with_metadata(&args.out, &imported.metadata)?;
    let (trainable, frozen) = model.num_parameters();
    println!(
        "wrote {} from {}: {} layers, {} parameters, input [{}], output [{}]{}",
        args.out.display(),
        args.from.display(),
        model.layers().len(),
        nn_layers::thousands(trainable + frozen),
        model.input_shape().iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
        model.output_shape().iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
        match &imported.metadata.class_names {
            Some(names) => format!("; {} class names", names.len()),
            None => String::new(),
        },
    );
    for note in &imported.notes {
        println!("note: {note}");
    }
    Ok(())
}
