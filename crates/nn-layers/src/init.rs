//! Weight initializers with Keras's formulas and defaults, and the fan-in/fan-out
//! they scale by.

use nn_tensor::random::Rng;
use nn_tensor::{Element, Tensor, TensorError};
use serde::{Deserialize, Serialize};

/// The number of inputs and outputs feeding one unit of a weight tensor, which the
/// variance-scaling initializers (Glorot, He, LeCun) divide by.
///
/// Computed by each layer for its kind (Keras's `compute_fans`, applied to nn's
/// layouts):
///
/// | parameter | shape | fan_in | fan_out |
/// |---|---|---|---|
/// | Dense kernel | `[in_features, out_features]` | `in_features` | `out_features` |
/// | Conv2D kernel | `[kh, kw, in_channels, filters]` | `kh·kw·in_channels` | `kh·kw·filters` |
/// | Embedding table | `[input_dim, output_dim]` | `input_dim` | `output_dim` |
/// | recurrent kernel | `[features, gates·units]`, `[units, gates·units]` | rows | columns |
/// | vectors (bias, γ, β, statistics) | `[n]` | `n` | `n` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fans {
    /// Inputs per output unit (receptive field size × input channels for a kernel).
    pub fan_in: usize,
    /// Outputs per input unit (receptive field size × filters for a kernel).
    pub fan_out: usize,
}

impl Fans {
    /// Keras's rule from the shape alone: `[n]` → `(n, n)`; `[a, b]` → `(a, b)`;
    /// `[k0, ..., in, out]` → `(rf·in, rf·out)` with `rf = k0·k1·…` the receptive field
    /// size; `[]` → `(1, 1)`.
    pub fn of_shape(shape: &[usize]) -> Fans {
        match shape {
            [] => Fans { fan_in: 1, fan_out: 1 },
            [n] => Fans { fan_in: *n, fan_out: *n },
            [a, b] => Fans { fan_in: *a, fan_out: *b },
            [rest @ .., i, o] => {
                let rf: usize = rest.iter().product();
                Fans { fan_in: rf * i, fan_out: rf * o }
            }
        }
    }

    /// Fans of a Dense kernel `[in_features, out_features]`.
    pub fn dense(in_features: usize, out_features: usize) -> Fans {
        Fans { fan_in: in_features, fan_out: out_features }
    }

    /// Fans of a Conv2D kernel `[kh, kw, in_channels, filters]`: receptive field
    /// size `kh·kw` times the input channels, and times the filters.
    pub fn conv2d(kernel: (usize, usize), in_channels: usize, filters: usize) -> Fans {
        let rf = kernel.0 * kernel.1;
        Fans { fan_in: rf * in_channels, fan_out: rf * filters }
    }
}

/// How a parameter is filled when a model is created. Serialised as Keras names
/// them: `"glorot_uniform"`, `"he_normal"`, `"zeros"`, ..., and
/// `{"constant": 0.5}`, `{"random_uniform": {"minval": -0.05, "maxval": 0.05}}`.
///
/// The variance-scaling family follows Keras's `VarianceScaling` (Glorot & Bengio,
/// 2010, eq. 16 for Glorot; He et al., 2015, eq. 10 for He; LeCun et al., "Efficient
/// BackProp", 1998, for LeCun), with `n` the fan given by [`Fans`] (at least 1):
///
/// | initializer | distribution |
/// |---|---|
/// | `glorot_uniform` (Keras's default for kernels) | `U(−l, l)`, `l = √(6 / (fan_in + fan_out))` |
/// | `glorot_normal` | truncated normal, `σ = √(2 / (fan_in + fan_out)) / 0.8796…` |
/// | `he_uniform` | `U(−l, l)`, `l = √(6 / fan_in)` |
/// | `he_normal` | truncated normal, `σ = √(2 / fan_in) / 0.8796…` |
/// | `lecun_uniform` | `U(−l, l)`, `l = √(3 / fan_in)` |
/// | `lecun_normal` | truncated normal, `σ = √(1 / fan_in) / 0.8796…` |
///
/// "Truncated normal" redraws values beyond 2σ (as TensorFlow does); dividing σ by
/// 0.87962566103423978, the standard deviation of a unit normal truncated to ±2, gives
/// the drawn values exactly the target variance (Keras's constant).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Initializer {
    /// Glorot (Xavier) uniform: Keras's default for Dense and Conv2D kernels.
    #[default]
    GlorotUniform,
    /// Glorot (Xavier) truncated normal.
    GlorotNormal,
    /// He (Kaiming) uniform.
    HeUniform,
    /// He (Kaiming) truncated normal.
    HeNormal,
    /// LeCun uniform.
    LecunUniform,
    /// LeCun truncated normal.
    LecunNormal,
    /// All zeros (Keras's default for biases, β and moving means).
    Zeros,
    /// All ones (Keras's default for γ and moving variances).
    Ones,
    /// Every element equal to the value.
    Constant(f64),
    /// `U(minval, maxval)`; Keras's default for Embedding tables is `U(−0.05, 0.05)`.
    RandomUniform {
        /// Lower bound (inclusive).
        minval: f64,
        /// Upper bound (exclusive).
        maxval: f64,
    },
    /// `N(mean, stddev²)`.
    RandomNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        stddev: f64,
    },
    /// `N(mean, stddev²)` with values beyond `mean ± 2·stddev` redrawn.
    TruncatedNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation before truncation.
        stddev: f64,
    },
    /// A (semi-)orthogonal matrix (Saxe, McClelland & Ganguli, "Exact solutions to the
    /// nonlinear dynamics of learning in deep linear neural networks", ICLR 2014;
    /// Keras's default for recurrent kernels, gain 1). The shape is read as a matrix
    /// `[rows, columns]` (`rows` the product of all axes but the last); the result has
    /// orthonormal columns when `rows ≥ columns`, orthonormal rows otherwise. Drawn
    /// as Keras does: the Q factor of a standard normal matrix, with the signs that
    /// make R's diagonal positive (so Q is uniform over the orthogonal group).
    Orthogonal,
}

/// Standard deviation of a unit normal truncated to `[−2, 2]` (Keras's constant).
const TRUNCATED_STD: f64 = 0.879_625_661_034_239_8;

impl Initializer {
    /// Keras's name (`"glorot_uniform"`, `"constant"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Initializer::GlorotUniform => "glorot_uniform",
            Initializer::GlorotNormal => "glorot_normal",
            Initializer::HeUniform => "he_uniform",
            Initializer::HeNormal => "he_normal",
            Initializer::LecunUniform => "lecun_uniform",
            Initializer::LecunNormal => "lecun_normal",
            Initializer::Zeros => "zeros",
            Initializer::Ones => "ones",
            Initializer::Constant(_) => "constant",
            Initializer::RandomUniform { .. } => "random_uniform",
            Initializer::RandomNormal { .. } => "random_normal",
            Initializer::TruncatedNormal { .. } => "truncated_normal",
            Initializer::Orthogonal => "orthogonal",
        }
    }

    /// The bound `l` of `U(−l, l)` for the uniform variance-scaling initializers, or
    /// the standard deviation σ (before truncation) for the normal ones; `None` for
    /// the others.
    pub fn scale(&self, fans: Fans) -> Option<f64> {
        let fan_in = fans.fan_in.max(1) as f64;
        let fan_avg = ((fans.fan_in + fans.fan_out) as f64 / 2.0).max(1.0);
        Some(match self {
            Initializer::GlorotUniform => (3.0 / fan_avg).sqrt(),
            Initializer::GlorotNormal => (1.0 / fan_avg).sqrt() / TRUNCATED_STD,
            Initializer::HeUniform => (6.0 / fan_in).sqrt(),
            Initializer::HeNormal => (2.0 / fan_in).sqrt() / TRUNCATED_STD,
            Initializer::LecunUniform => (3.0 / fan_in).sqrt(),
            Initializer::LecunNormal => (1.0 / fan_in).sqrt() / TRUNCATED_STD,
            _ => return None,
        })
    }

    /// A tensor of `shape` drawn from this initializer, using `rng` (drawn in
    /// row-major order, so the same seed gives the same values).
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] for unusable settings (`minval ≥ maxval`, a
    /// negative or non-finite standard deviation, a non-finite constant);
    /// [`TensorError::Overflow`] for an overflowing shape.
    pub fn init<T: Element>(&self, shape: &[usize], fans: Fans, rng: &mut Rng) -> Result<Tensor<T>, TensorError> {
        let uniform = |l: f64, rng: &mut Rng| Tensor::random_uniform(shape, T::of_f64(-l), T::of_f64(l), rng);
        match *self {
            Initializer::GlorotUniform | Initializer::HeUniform | Initializer::LecunUniform => {
                uniform(self.scale(fans).expect("variance scaling"), rng)
            }
            Initializer::GlorotNormal | Initializer::HeNormal | Initializer::LecunNormal => {
                Tensor::random_truncated_normal(shape, 0.0, self.scale(fans).expect("variance scaling"), rng)
            }
            Initializer::Zeros => Tensor::try_full(shape, T::zero()),
            Initializer::Ones => Tensor::try_full(shape, T::one()),
            Initializer::Constant(v) => {
                if !v.is_finite() {
                    return Err(TensorError::InvalidArgument {
                        op: "constant initializer",
                        message: format!("value {v} is not finite"),
                    });
                }
                Tensor::try_full(shape, T::of_f64(v))
            }
            Initializer::RandomUniform { minval, maxval } => {
                if !(minval.is_finite() && maxval.is_finite() && minval < maxval) {
                    return Err(TensorError::InvalidArgument {
                        op: "random_uniform initializer",
                        message: format!("range [{minval}, {maxval}) is empty or not finite"),
                    });
                }
                Tensor::random_uniform(shape, T::of_f64(minval), T::of_f64(maxval), rng)
            }
            Initializer::RandomNormal { mean, stddev } => Tensor::random_normal(shape, mean, stddev, rng),
            Initializer::TruncatedNormal { mean, stddev } => Tensor::random_truncated_normal(shape, mean, stddev, rng),
            Initializer::Orthogonal => orthogonal(shape, rng),
        }
    }
}

/// Draws a (semi-)orthogonal matrix of `shape` (see [`Initializer::Orthogonal`]):
/// modified Gram–Schmidt, applied twice per column for accuracy to rounding, on the
/// columns of an `[max(r, c), min(r, c)]` standard normal matrix (in `f64`), which
/// gives Q with R's diagonal positive; transposed when `rows < columns`.
fn orthogonal<T: Element>(shape: &[usize], rng: &mut Rng) -> Result<Tensor<T>, TensorError> {
    if shape.len() < 2 {
        return Err(TensorError::InvalidArgument {
            op: "orthogonal initializer",
            message: format!("needs a shape of at least 2 axes, got {shape:?}"),
        });
    }
    nn_tensor::shape::checked_numel("orthogonal initializer", shape)?;
    let cols = shape[shape.len() - 1];
    let rows: usize = shape[..shape.len() - 1].iter().product();
    let (m, k) = (rows.max(cols), rows.min(cols));
    // a[j] is column j (length m).
    let a = Tensor::<f64>::random_normal(&[k, m], 0.0, 1.0, rng)?;
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(k);
    for col in a.array().outer_iter() {
        let mut v: Vec<f64> = col.iter().copied().collect();
        for _ in 0..2 {
            for qj in &q {
                let dot: f64 = qj.iter().zip(&v).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(qj).for_each(|(x, q)| *x -= dot * q);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return Err(TensorError::InvalidArgument {
                op: "orthogonal initializer",
                message: "the random matrix drawn was rank deficient".into(),
            });
        }
        v.iter_mut().for_each(|x| *x /= norm);
        q.push(v);
    }
    // Q is [m, k] with columns q[j]; the result is Q ([rows ≥ cols]) or Qᵀ.
    let out: Vec<T> = (0..rows * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            T::of_f64(if rows >= cols { q[c][r] } else { q[r][c] })
        })
        .collect();
    Tensor::try_from_vec(shape, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_follow_keras() {
        assert_eq!(Fans::of_shape(&[3, 3, 1, 32]), Fans { fan_in: 9, fan_out: 288 });
        assert_eq!(Fans::of_shape(&[3, 3, 1, 32]), Fans::conv2d((3, 3), 1, 32));
        assert_eq!(Fans::of_shape(&[5408, 128]), Fans::dense(5408, 128));
        assert_eq!(Fans::of_shape(&[7]), Fans { fan_in: 7, fan_out: 7 });
    }

    #[test]
    fn serde_names() {
        let text = serde_json::to_string(&Initializer::HeNormal).unwrap();
        assert_eq!(text, "\"he_normal\"");
        let c: Initializer = serde_json::from_str("{\"constant\": 0.5}").unwrap();
        assert_eq!(c, Initializer::Constant(0.5));
        let u: Initializer = serde_json::from_str("{\"random_uniform\": {\"minval\": -1, \"maxval\": 2}}").unwrap();
        assert_eq!(u, Initializer::RandomUniform { minval: -1.0, maxval: 2.0 });
        assert!(serde_json::from_str::<Initializer>("\"xavier\"").is_err());
    }
}
