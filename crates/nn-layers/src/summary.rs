//! Keras-style model summary.

use nn_tensor::Element;

use crate::model::{Model, ModelShapes, Source};

/// `1234567` → `"1,234,567"`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Bytes in Keras's units: `"2.65 MB"` (1 MB = 1024² bytes), `"0.00 B"`.
fn human_bytes(bytes: usize) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2} {}", units[u])
}

impl<T: Element> Model<T> {
    /// A Keras-style table: one row per layer with its name and type
    /// (`layers.{i} (Kind)`), output shape (`(None, ...)`, `None` standing for the
    /// batch) and parameter count; then the total, trainable and non-trainable
    /// counts with their size in memory (`T`'s size per scalar).
    ///
    /// For the seed CNN on 28×28×1 with 10 classes:
    ///
    /// ```text
    /// Model: "sequential" (input (None, 28, 28, 1), f32)
    /// ________________________________________________________________
    ///  Layer (type)                Output Shape                Param #
    /// ================================================================
    ///  layers.0 (Conv2D)           (None, 26, 26, 32)              320
    ///  layers.1 (MaxPool2D)        (None, 13, 13, 32)                0
    ///  layers.2 (Flatten)          (None, 5408)                      0
    ///  layers.3 (Dense)            (None, 128)                 692,352
    ///  layers.4 (Dense)            (None, 10)                    1,290
    /// ================================================================
    /// Total params: 693,962 (2.65 MB)
    /// Trainable params: 693,962 (2.65 MB)
    /// Non-trainable params: 0 (0.00 B)
    /// ________________________________________________________________
    /// ```
    pub fn summary(&self) -> String {
        self.shapes().summary::<T>()
    }
}

impl ModelShapes {
    /// The table of [`Model::summary`] for a model with scalars of type `T`, from its
    /// shapes alone: `spec.shapes()?.summary::<f32>()` prints a model of any size
    /// without allocating its parameters (see [`ModelSpec::shapes`](crate::ModelSpec::shapes)).
    pub fn summary<T: Element>(&self) -> String {
        let shape = |s: &[usize]| {
            let mut out = String::from("(None");
            for d in s {
                out.push_str(&format!(", {d}"));
            }
            out.push(')');
            out
        };
        // A chain lists `layers.{i} (Kind)` rows; a graph lists `name (Kind)` rows in
        // execution order with a "Connected to" column, as Keras's functional models.
        let chain = self.is_chain() && self.format_version == 1;
        let mut rows = Vec::with_capacity(self.layers.len());
        let order: Vec<usize> = if chain { (0..self.layers.len()).collect() } else { self.order.clone() };
        for i in order {
            let layer = &self.layers[i];
            let name = if chain { format!("layers.{i}") } else { layer.name.clone() };
            let from = layer
                .inputs
                .iter()
                .map(|s| match *s {
                    Source::Input(k) => self.inputs[k].name.clone(),
                    Source::Layer(j) => self.layers[j].name.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            rows.push((
                format!("{name} ({})", layer.kind),
                shape(&layer.output_shape),
                thousands(layer.parameters),
                from,
            ));
        }
        let head = ("Layer (type)", "Output Shape", "Param #", "Connected to");
        let w0 = rows.iter().map(|r| r.0.chars().count()).chain([head.0.len()]).max().unwrap_or(0).max(24) + 4;
        let w1 = rows.iter().map(|r| r.1.chars().count()).chain([head.1.len()]).max().unwrap_or(0).max(20) + 4;
        let w2 = rows.iter().map(|r| r.2.chars().count()).chain([head.2.len()]).max().unwrap_or(0).max(11);
        let w3 = if chain {
            0
        } else {
            4 + rows.iter().map(|r| r.3.chars().count()).chain([head.3.len()]).max().unwrap_or(0)
        };
        let width = 1 + w0 + w1 + w2 + w3;
        let (trainable, frozen) = self.num_parameters();
        let size = std::mem::size_of::<T>();

        let mut out = String::new();
        if chain {
            out.push_str(&format!("Model: \"sequential\" (input {}, {})\n", shape(&self.inputs[0].shape), T::DTYPE));
        } else {
            let ins: Vec<String> = self.inputs.iter().map(|i| format!("{} {}", i.name, shape(&i.shape))).collect();
            out.push_str(&format!("Model: \"functional\" (inputs {}, {})\n", ins.join(", "), T::DTYPE));
        }
        out.push_str(&"_".repeat(width));
        out.push('\n');
        if chain {
            out.push_str(&format!(" {:<w0$}{:<w1$}{:>w2$}\n", head.0, head.1, head.2));
        } else {
            out.push_str(&format!(" {:<w0$}{:<w1$}{:>w2$}    {}\n", head.0, head.1, head.2, head.3));
        }
        out.push_str(&"=".repeat(width));
        out.push('\n');
        for (name, shape, count, from) in &rows {
            if chain {
                out.push_str(&format!(" {name:<w0$}{shape:<w1$}{count:>w2$}\n"));
            } else {
                out.push_str(&format!(" {name:<w0$}{shape:<w1$}{count:>w2$}    {from}\n"));
            }
        }
        out.push_str(&"=".repeat(width));
        out.push('\n');
        let total = trainable + frozen;
        out.push_str(&format!("Total params: {} ({})\n", thousands(total), human_bytes(total * size)));
        out.push_str(&format!("Trainable params: {} ({})\n", thousands(trainable), human_bytes(trainable * size)));
        out.push_str(&format!("Non-trainable params: {} ({})\n", thousands(frozen), human_bytes(frozen * size)));
        out.push_str(&"_".repeat(width));
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(320), "320");
        assert_eq!(thousands(1290), "1,290");
        assert_eq!(thousands(692_352), "692,352");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(human_bytes(693_962 * 4), "2.65 MB");
        assert_eq!(human_bytes(0), "0.00 B");
    }
}
