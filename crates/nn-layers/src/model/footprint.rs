//! Sizing a model before building it: a shape-only pass over a [`ModelSpec`]
//! ([`ModelSpec::shapes`]: every layer's output shape and parameter count, nothing of
//! a parameter's size allocated), the memory it needs ([`Footprint`]: the parameters,
//! one training step and one inference batch at a given batch size), and the machine's
//! memory to compare it with ([`machine_memory`], [`parse_memory_size`]).
//!
//! ```
//! use nn_layers::ModelSpec;
//!
//! // 20 million units on 64 inputs: 1.3 billion parameters, sized without allocating them.
//! let spec = ModelSpec::from_json(
//!     r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 20000000}]}"#,
//! )?;
//! let shapes = spec.shapes()?;
//! assert_eq!(shapes.num_parameters(), (1_300_000_000, 0));
//! let step = shapes.footprint(4).training_step(32, 2);
//! assert!(step.total() > 20 << 30, "parameters, gradients and Adam's two slots: 16 bytes each");
//! # Ok::<(), nn_layers::LayerError>(())
//! ```

use std::path::Path;

use nn_tensor::Element;

use super::{resolve, Model, ModelSpec, Source, MAX_PARAMETERS};
use crate::error::Result;
use crate::model::InputSpec;
use crate::spec::LayerSpec;

/// One layer as the shape-only pass sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerShape {
    /// Its name: the given one, or the default `{kind in snake case}_{index}`.
    pub name: String,
    /// Its kind (`"Dense"`, `"Conv2D"`, ...).
    pub kind: &'static str,
    /// What it takes.
    pub inputs: Vec<Source>,
    /// Its output's shape per sample (without the batch axis).
    pub output_shape: Vec<usize>,
    /// Its parameter scalars, trainable or not.
    pub parameters: usize,
    /// How many of those are trainable.
    pub trainable: usize,
    /// Scalars per sample it keeps for backward besides its output (a recurrent
    /// layer's gates and states for every step, Dropout's mask); see [`Footprint`].
    pub saved: usize,
}

/// A model's layers, shapes and parameter counts without its parameters: what
/// [`ModelSpec::shapes`] (before building) and [`Model::shapes`] (of a built model,
/// with its frozen state) give, and what [`ModelShapes::summary`] prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelShapes {
    /// The description's format version (1: a chain, 2: a graph).
    pub format_version: u32,
    /// The model's inputs: names and per-sample shapes.
    pub inputs: Vec<InputSpec>,
    /// Every layer, in spec order.
    pub layers: Vec<LayerShape>,
    /// The order the layers run in (each after its inputs).
    pub order: Vec<usize>,
    /// The model's outputs.
    pub outputs: Vec<Source>,
}

impl ModelSpec {
    /// The shape-only pass: builds every layer from its settings and input shapes and
    /// reports each one's output shape and parameter count, with every check of
    /// [`Model::new`] (names, references, cycles, shapes, at most [`MAX_PARAMETERS`]
    /// parameters) but without allocating any parameter or activation: its cost is
    /// that of reading the spec, whatever the model's size.
    ///
    /// # Errors
    /// As [`Model::new`], but for initializer settings (checked when parameters are
    /// drawn).
    pub fn shapes(&self) -> Result<ModelShapes> {
        let r = resolve::<f32>(self, MAX_PARAMETERS)?;
        let layers = r
            .layers
            .iter()
            .zip(&self.layers)
            .enumerate()
            .map(|(i, (layer, node))| {
                let specs = layer.param_specs();
                LayerShape {
                    name: r.names[i].clone(),
                    kind: layer.kind(),
                    inputs: r.sources[i].clone(),
                    output_shape: layer.output_shape().to_vec(),
                    parameters: specs.iter().map(|p| p.len()).sum(),
                    trainable: specs.iter().filter(|p| p.trainable).map(|p| p.len()).sum(),
                    saved: saved_per_sample(&node.layer, layer.input_shape(), layer.output_shape()),
                }
            })
            .collect();
        Ok(ModelShapes {
            format_version: self.format_version,
            inputs: r.inputs,
            layers,
            order: r.order,
            outputs: r.outputs,
        })
    }

    /// The description saved in a model folder's `model.json` (as
    /// [`Model::save`](crate::Model::save) writes it), read without building the model
    /// or reading its weights, so that its size can be checked
    /// ([`ModelSpec::shapes`], [`ModelShapes::footprint`]) before
    /// [`Model::load`](crate::Model::load) allocates it.
    ///
    /// # Errors
    /// [`LayerError::Io`](crate::LayerError::Io) for a missing or unreadable file, or
    /// one over 16 MiB; [`LayerError::Format`](crate::LayerError::Format) for one that
    /// is not JSON or holds no valid `model`.
    pub fn read_saved(dir: &Path) -> Result<ModelSpec> {
        /// The largest models' descriptions are a few hundred kilobytes.
        const MAX_BYTES: u64 = 16 << 20;
        let path = dir.join(crate::io::MODEL_FILE);
        let size = std::fs::metadata(&path).map_err(crate::io::io_err(&path, "reading"))?.len();
        if size > MAX_BYTES {
            return Err(crate::LayerError::Io {
                path: path.clone(),
                message: format!("{size} bytes is too large for a model description (at most {MAX_BYTES})"),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(crate::io::io_err(&path, "reading"))?;
        let mut value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| crate::io::format_err(&path, format!("not valid JSON: {e}")))?;
        let model = value
            .get_mut("model")
            .map(serde_json::Value::take)
            .ok_or_else(|| crate::io::format_err(&path, "no \"model\" at the top level"))?;
        let spec: ModelSpec = serde_json::from_value(model)
            .map_err(|e| crate::io::format_err(&path, crate::clip_to(&format!("model: {e}"), 400)))?;
        spec.check_version().map_err(|e| crate::io::format_err(&path, e.to_string()))?;
        Ok(spec)
    }
}

impl<T: Element> Model<T> {
    /// The model's [`ModelShapes`], with its parameters' current frozen state (as
    /// [`Model::summary`] prints them).
    pub fn shapes(&self) -> ModelShapes {
        let layers = (0..self.layers.len())
            .map(|i| {
                let layer = &self.layers[i];
                let params = self.layer_parameters(i);
                LayerShape {
                    name: self.names[i].clone(),
                    kind: layer.kind(),
                    inputs: self.sources[i].clone(),
                    output_shape: layer.output_shape().to_vec(),
                    parameters: params.iter().map(|p| p.len()).sum(),
                    trainable: params.iter().filter(|p| p.trainable).map(|p| p.len()).sum(),
                    saved: saved_per_sample(&self.spec.layers[i].layer, layer.input_shape(), layer.output_shape()),
                }
            })
            .collect();
        ModelShapes {
            format_version: self.spec.format_version,
            inputs: self.inputs.clone(),
            layers,
            order: self.order.clone(),
            outputs: self.outputs.clone(),
        }
    }
}

/// Scalars per sample a layer keeps for backward besides its output: a recurrent
/// layer's per-step gates and states (LSTM: the input projection of its 4 gates and
/// the `h`, `c` sequences, 6·units per step; GRU: 3 gates, the recurrent product and
/// `h`, 5·units; SimpleRNN: the projection and `h`, 2·units), Dropout's mask (one per
/// output scalar), MultiHeadAttention's projections and attention maps
/// ([`attention_saved`]); 0 for the others.
fn saved_per_sample(layer: &LayerSpec, input: &[usize], output: &[usize]) -> usize {
    let time = input.first().copied().unwrap_or(1);
    let per_step = match layer {
        LayerSpec::SimpleRNN(c) => c.units.saturating_mul(2),
        LayerSpec::LSTM(c) => c.units.saturating_mul(6),
        LayerSpec::GRU(c) => c.units.saturating_mul(5),
        LayerSpec::Dropout(_) => return output.iter().product(),
        LayerSpec::MultiHeadAttention(c) => return attention_saved(c, time),
        _ => return 0,
    };
    time.saturating_mul(per_step)
}

/// Scalars per sample MultiHeadAttention keeps for backward, an estimate taking the
/// key length equal to the query length `seq`: the query, key and value projections
/// (each the GEMM's output and its head-major copy), the scores and the attention
/// weights `[heads, seq, seq]` (and the dropout mask and dropped weights in
/// training), the heads' outputs and their merged copy.
fn attention_saved(c: &crate::spec::MultiHeadAttentionConfig, seq: usize) -> usize {
    let h = c.num_heads;
    let dims = c.key_dim.saturating_mul(2).saturating_add(c.effective_value_dim());
    let projections = seq.saturating_mul(h).saturating_mul(dims).saturating_mul(2);
    let maps = if c.dropout > 0.0 { 4 } else { 2 };
    let weights = h.saturating_mul(seq).saturating_mul(seq).saturating_mul(maps);
    let heads_out = seq.saturating_mul(h).saturating_mul(c.effective_value_dim()).saturating_mul(2);
    projections.saturating_add(weights).saturating_add(heads_out)
}

impl ModelShapes {
    /// `(trainable, non-trainable)` parameter scalars.
    pub fn num_parameters(&self) -> (usize, usize) {
        let all: usize = self.layers.iter().map(|l| l.parameters).sum();
        let trainable: usize = self.layers.iter().map(|l| l.trainable).sum();
        (trainable, all - trainable)
    }

    /// Whether the model is a chain: each layer takes the one before it (the first
    /// the only input) and the last is the only output.
    pub fn is_chain(&self) -> bool {
        self.inputs.len() == 1
            && self.outputs == [Source::Layer(self.layers.len() - 1)]
            && self
                .layers
                .iter()
                .enumerate()
                .all(|(i, l)| l.inputs == [if i == 0 { Source::Input(0) } else { Source::Layer(i - 1) }])
    }

    /// The memory estimate of this model with parameters and activations of
    /// `scalar_bytes` bytes each (4 for `f32`); see [`Footprint`].
    pub fn footprint(&self, scalar_bytes: usize) -> Footprint {
        let numel = |s: &[usize]| s.iter().map(|&d| d as u128).product::<u128>();
        let inputs: u128 = self.inputs.iter().map(|i| numel(&i.shape)).sum();
        let outs: Vec<u128> = self.layers.iter().map(|l| numel(&l.output_shape)).collect();
        let kept = outs.iter().sum::<u128>() + self.layers.iter().map(|l| l.saved as u128).sum::<u128>();
        // Inference: walk the execution order, freeing each value after its last reader.
        let mut readers = vec![0usize; self.layers.len()];
        for s in self.layers.iter().flat_map(|l| &l.inputs).chain(&self.outputs) {
            if let Source::Layer(j) = *s {
                readers[j] += 1;
            }
        }
        let (mut live, mut peak) = (inputs, inputs);
        for &i in &self.order {
            live += outs[i];
            peak = peak.max(live);
            for s in &self.layers[i].inputs {
                if let Source::Layer(j) = *s {
                    readers[j] -= 1;
                    if readers[j] == 0 {
                        live -= outs[j];
                    }
                }
            }
        }
        let (trainable, frozen) = self.num_parameters();
        Footprint {
            scalar_bytes: scalar_bytes as u128,
            parameters: (trainable + frozen) as u128,
            trainable: trainable as u128,
            inputs,
            kept,
            inference_peak: peak,
        }
    }
}

/// The memory a model needs, estimated from its shapes ([`ModelShapes::footprint`]),
/// in bytes, with `s` bytes per scalar, `P` parameter scalars of which `Pₜ` are
/// trainable, `k` optimizer slots per trainable parameter, batch size `B`, `I` input
/// scalars per sample, and `A` the scalars per sample of every layer's output plus
/// what a layer keeps besides ([`LayerShape::saved`]):
///
/// - parameters: `s·P`;
/// - one training step ([`Footprint::training_step`]): `s·(P + Pₜ·(1 + k))` for the
///   parameters, their gradients and the optimizer's slots (Adam and AdamW keep 2,
///   the first and second moments; momentum SGD, RMSprop and Adagrad 1; plain SGD 0),
///   plus `s·B·(I + 2·A)` for the input batch and the activations the graph keeps for
///   backward, with a gradient of the same size for each;
/// - one inference batch ([`Footprint::inference`]): `s·P` plus `s·B` times the most
///   scalars alive at once when each value is freed after its last reader (the input
///   batch included).
///
/// It is an estimate: it leaves out the working buffers of the kernels (im2col
/// chunks, GEMM packing: bounded and small), the savings of fusion (a fused
/// Conv2D → MaxPool2D never stores the convolution's output, activations run in
/// place: so training is over-counted there), values a layer keeps that are not
/// listed above (BatchNormalization's batch statistics), the dataset itself, the
/// allocator's overhead, and the program and its thread stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes per scalar (`s`).
    pub scalar_bytes: u128,
    /// Parameter scalars, trainable or not (`P`).
    pub parameters: u128,
    /// Trainable parameter scalars (`Pₜ`).
    pub trainable: u128,
    /// Input scalars per sample, all inputs together (`I`).
    pub inputs: u128,
    /// Scalars per sample a training step keeps for backward (`A`).
    pub kept: u128,
    /// Most scalars per sample alive at once in inference, the input included.
    pub inference_peak: u128,
}

/// Bytes of one step, split into the parameters' share (values, gradients, optimizer
/// slots) and the activations' (the batch, what is kept, gradients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepMemory {
    /// Bytes that do not depend on the batch size.
    pub parameters: u128,
    /// Bytes proportional to the batch size.
    pub activations: u128,
}

impl StepMemory {
    /// Both shares together.
    pub fn total(&self) -> u128 {
        self.parameters + self.activations
    }
}

impl Footprint {
    /// The parameters' values: `s·P` bytes.
    pub fn parameter_bytes(&self) -> u128 {
        self.scalar_bytes * self.parameters
    }

    /// One training step at batch size `batch` with `optimizer_slots` slots per
    /// trainable parameter (2 for Adam); see [`Footprint`] for the formula.
    pub fn training_step(&self, batch: usize, optimizer_slots: usize) -> StepMemory {
        let s = self.scalar_bytes;
        StepMemory {
            parameters: s * (self.parameters + self.trainable * (1 + optimizer_slots as u128)),
            activations: s * batch as u128 * (self.inputs + 2 * self.kept),
        }
    }

    /// One inference batch of `batch` samples; see [`Footprint`] for the formula.
    pub fn inference(&self, batch: usize) -> StepMemory {
        StepMemory {
            parameters: self.parameter_bytes(),
            activations: self.scalar_bytes * batch as u128 * self.inference_peak,
        }
    }
}

/// `bytes` in binary units with one decimal: `"512 B"`, `"1.0 KiB"`, `"7.4 GiB"`,
/// `"2.0 TiB"` (TiB above that, so `"16777216.0 TiB"` for 2⁶⁴ bytes).
pub fn format_bytes(bytes: u128) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Parses a memory size: a number with an optional binary unit, `K`, `M`, `G` or `T`
/// (1024-based; `KiB`, `MB`, `gb`, ... read the same; no unit means bytes), e.g.
/// `512M`, `8G`, `1.5GiB`, `1048576`; or `unlimited` (`None`).
///
/// # Errors
/// A message for anything else, a size of 0, or one beyond 2⁶⁴ bytes.
pub fn parse_memory_size(text: &str) -> std::result::Result<Option<u64>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let bad = || {
        format!(
            "`{}`: expected a size such as 512M, 8G or 1.5GiB (K, M, G, T are powers of 1024), or `unlimited`",
            crate::clip(text)
        )
    };
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = value * (1u64 << shift) as f64;
    if bytes < 1.0 {
        return Err(format!("`{}`: the size must be at least 1 byte", crate::clip(text)));
    }
    if bytes >= u64::MAX as f64 {
        return Err(format!("`{}`: too large (use `unlimited`)", crate::clip(text)));
    }
    Ok(Some(bytes as u64))
}

/// The memory this process can use, as far as the system says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineMemory {
    /// Bytes.
    pub bytes: u64,
    /// What bounds it: `"MemTotal"` (`/proc/meminfo`), `"the cgroup's memory limit"`
    /// or `"the address-space limit (ulimit -v)"`.
    pub source: &'static str,
}

/// The smallest of the machine's memory (`MemTotal` in `/proc/meminfo`), the memory
/// limit of this process's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`) and
/// its address-space limit (`ulimit -v`, from `/proc/self/limits`), each when it can
/// be read and is not unlimited; `None` when none can (not Linux).
pub fn machine_memory() -> Option<MachineMemory> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let mut found: Vec<MachineMemory> = Vec::new();
    if let Some(kb) = read("/proc/meminfo").as_deref().and_then(meminfo_total_kib) {
        found.push(MachineMemory { bytes: kb.saturating_mul(1024), source: "MemTotal" });
    }
    let cgroup = read("/proc/self/cgroup").unwrap_or_default();
    let v2 = cgroup.lines().find_map(|l| l.strip_prefix("0::")).map(|p| p.trim_end_matches('/').to_string());
    let mut candidates = Vec::new();
    if let Some(p) = v2 {
        candidates.push(format!("/sys/fs/cgroup{p}/memory.max"));
    }
    candidates.push("/sys/fs/cgroup/memory.max".into());
    candidates.push("/sys/fs/cgroup/memory/memory.limit_in_bytes".into());
    if let Some(bytes) = candidates.iter().find_map(|p| read(p)).and_then(|t| t.trim().parse::<u64>().ok()) {
        found.push(MachineMemory { bytes, source: "the cgroup's memory limit" });
    }
    if let Some(bytes) = read("/proc/self/limits").as_deref().and_then(address_space_limit) {
        found.push(MachineMemory { bytes, source: "the address-space limit (ulimit -v)" });
    }
    found.into_iter().min_by_key(|m| m.bytes)
}

/// `MemTotal` in KiB from `/proc/meminfo`'s text.
fn meminfo_total_kib(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The soft `Max address space` limit in bytes from `/proc/self/limits`' text;
/// `None` when unlimited.
fn address_space_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max address space"))?;
    line["Max address space".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_memory_size("512M"), Ok(Some(512 << 20)));
        assert_eq!(parse_memory_size("8G"), Ok(Some(8 << 30)));
        assert_eq!(parse_memory_size("8gib"), Ok(Some(8 << 30)));
        assert_eq!(parse_memory_size("1.5GB"), Ok(Some(3 << 29)));
        assert_eq!(parse_memory_size("2T"), Ok(Some(2 << 40)));
        assert_eq!(parse_memory_size("4k"), Ok(Some(4096)));
        assert_eq!(parse_memory_size("1048576"), Ok(Some(1 << 20)));
        assert_eq!(parse_memory_size("unlimited"), Ok(None));
        assert_eq!(parse_memory_size("Unlimited"), Ok(None));
        for bad in ["", "G", "8X", "-1G", "0", "0.1", "1e9", "8 G G", "99999999999T"] {
            assert!(parse_memory_size(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn bytes_format_in_binary_units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(4 << 30), "4.0 GiB");
        assert_eq!(format_bytes(7_945_689_497), "7.4 GiB");
        assert_eq!(format_bytes(3 << 40), "3.0 TiB");
        assert_eq!(format_bytes(1 << 60), "1048576.0 TiB");
    }

    #[test]
    fn proc_files_parse() {
        let meminfo = "MemTotal:       24683784 kB\nMemFree:         1000 kB\n";
        assert_eq!(meminfo_total_kib(meminfo), Some(24_683_784));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max address space         3072000000           unlimited            bytes\n";
        assert_eq!(address_space_limit(limits), Some(3_072_000_000));
        let unlimited = "Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(address_space_limit(unlimited), None);
        if cfg!(target_os = "linux") {
            assert!(machine_memory().is_some_and(|m| m.bytes > 0), "Linux reports its memory");
        }
    }
}
