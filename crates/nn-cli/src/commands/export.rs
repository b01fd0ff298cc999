//! `nn-cli export`: a saved model as an ONNX file (the nn-onnx crate), with its input
//! scaling as nodes at the input (and a regression model's target scaling at the
//! output), its class names and feature columns as metadata, so ONNX Runtime
//! answers the raw features `nn-cli predict` reads with the same outputs.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::error::{CliError, Result};

/// The file formats `nn-cli export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// ONNX (`.onnx`): one inference graph, NHWC tensors, dynamic batch axis.
    Onnx,
}

/// `nn-cli export` flags.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A folder written by `nn-cli fit --out`.
    #[arg(long)]
    pub model: PathBuf,
    /// The file format.
    #[arg(long, value_enum, default_value = "onnx")]
    pub format: ExportFormat,
    /// The file to write (replaced atomically when it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// The ONNX operator set version, 13 to 17 (LayerNormalization is decomposed below 17).
    #[arg(long, default_value_t = nn_onnx::DEFAULT_OPSET,
          value_parser = clap::value_parser!(i64).range(*nn_onnx::OPSETS.start()..=*nn_onnx::OPSETS.end()))]
    pub opset: i64,
}

/// `nn-cli export`: loads the model folder, writes the ONNX file, prints what it holds.
///
/// # Errors
/// The loader's errors for a missing or damaged folder; [`CliError::Usage`] naming
/// the layer that has no ONNX form (nothing is written then); [`CliError::Io`] when
/// the file cannot be written.
pub fn run(args: ExportArgs) -> Result<()> {
    let (model, meta) = super::load_model(&args.model)?;
    let ExportFormat::Onnx = args.format;
    let bytes = nn_onnx::export(&model, &meta, args.opset)
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.model.display())))?;
    nn_tensor::io::write_atomic(&args.out, |w: &mut dyn Write| w.write_all(&bytes))
        .map_err(|e| CliError::io(&args.out, e))?;
    let shape = |s: &[usize]| {
        std::iter::once(nn_onnx::BATCH_DIM.to_string()).chain(s.iter().map(|d| d.to_string())).collect::<Vec<_>>()
    };
    println!(
        "wrote {} (ONNX opset {}, {} bytes): input {:?} float32 [{}], output \"output\" float32 [{}]{}{}{}",
        args.out.display(),
        args.opset,
        bytes.len(),
        model.inputs()[0].name,
        shape(model.input_shape()).join(", "),
        shape(model.output_shape()).join(", "),
        match (meta.scalers.is_empty(), meta.target_scaler.is_some()) {
            (false, true) => "; input scaling and target scaling included",
            (false, false) => "; input scaling included",
            (true, true) => "; target scaling included",
            (true, false) => "",
        },
        if meta.class_names.is_some() { "; class names in metadata_props[\"class_names\"]" } else { "" },
        match &meta.features {
            Some(f) if !f.is_positional() => format!(
                "; {} feature column names in metadata_props[\"{}\"]",
                f.columns.len(),
                nn_onnx::export::NN_METADATA_KEY
            ),
            _ => String::new(),
        },
    );
    Ok(())
}
