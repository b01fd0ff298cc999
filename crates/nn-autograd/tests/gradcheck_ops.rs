//! Every differentiable op, gradchecked in f64 against central finite differences over
//! random shapes (size-1 broadcast axes, odd convolution sizes, strides 1–3, `valid`
//! and `same` padding) and random values.
//!
//! Tolerance: the worst relative error `|analytic − numeric| / max(|analytic|,
//! |numeric|, 1e-3)` must be at most `TOL = 1e-6` (the default `GradcheckOptions`:
//! fourth-order central differences with `h = 1e-3·max(1, |x|)`, which agree with a
//! correct gradient to about 1e-9 here, while a rule off by a factor 1 + 1e-6 fails).
//! Inputs are kept at least `0.01` (> 2h, the stencil's reach) away from kinks:
//! relu/abs/leaky_relu/elu at 0, clamp bounds, and ties of max and max-pool (values
//! there are distinct multiples of 0.05).

use nn_autograd::{
    conv2d_max_pool_value, conv2d_value, gradcheck, linear_value, Element, Epilogue, Graph, Padding, PoolWindow,
    Reduction, Result, Tensor, Var,
};
use nn_tensor::conv::Conv2dGeometry;
use nn_tensor::random::seeded_rng;
use proptest::prelude::*;

/// Target relative error away from kinks.
const TOL: f64 = 1e-6;

/// Uniform values in `[lo, hi)`.
fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor<f64> {
    Tensor::random_uniform(shape, lo, hi, &mut seeded_rng(seed)).unwrap()
}

/// Uniform values in `[-2, 2)` moved at least `margin` away from each point in `kinks`.
fn away_from(shape: &[usize], kinks: &[f64], seed: u64) -> Tensor<f64> {
    let margin = 0.01;
    uniform(shape, -2.0, 2.0, seed).map(|mut v| {
        for &k in kinks {
            if (v - k).abs() < margin {
                v = if v >= k { k + margin } else { k - margin };
            }
        }
        v
    })
}

/// Values that are all distinct, at least 0.05 apart (no ties for max and max-pool):
/// a seeded shuffle of `0.05·(i − n/2)`.
fn distinct(shape: &[usize], seed: u64) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let keys = uniform(&[n], 0.0, 1.0, seed).to_vec();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let values = order.iter().map(|&i| 0.05 * (i as f64 - n as f64 / 2.0)).collect();
    Tensor::from_vec(shape, values)
}

/// Runs gradcheck and asserts the tolerance, printing the report on failure.
fn check(
    inputs: &[Tensor<f64>],
    f: impl Fn(&mut Graph<f64>, &[Var]) -> Result<Var>,
) -> std::result::Result<(), TestCaseError> {
    let report = gradcheck(inputs, f).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(report.passes(TOL), "{report}");
    Ok(())
}

/// A target shape and two shapes broadcasting to it: some axes knocked down to 1,
/// some leading axes dropped.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    prop::collection::vec(1usize..4, 0..4)
        .prop_flat_map(|target| {
            let n = target.len();
            (
                Just(target),
                prop::collection::vec(any::<bool>(), n),
                prop::collection::vec(any::<bool>(), n),
                0..=n,
                0..=n,
            )
        })
        .prop_map(|(target, ones_a, ones_b, drop_a, drop_b)| {
            let knock = |ones: &[bool], drop: usize| -> Vec<usize> {
                target.iter().zip(ones).map(|(&d, &o)| if o { 1 } else { d }).skip(drop).collect()
            };
            (knock(&ones_a, drop_a), knock(&ones_b, drop_b))
        })
}

fn shape_strategy(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 1..=max_rank)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn broadcasting_binary_ops((sa, sb) in broadcast_pair(), which in 0usize..4, seed in any::<u64>()) {
        let a = uniform(&sa, -2.0, 2.0, seed);
        // Denominators of div stay in ±[0.5, 2].
        let b = if which == 3 {
            uniform(&sb, 0.5, 2.0, seed ^ 1).map(|v| if (v * 1e4) as i64 % 2 == 0 { v } else { -v })
        } else {
            uniform(&sb, -2.0, 2.0, seed ^ 1)
        };
        check(&[a, b], |g, v| match which {
            0 => g.try_add(v[0], v[1]),
            1 => g.try_sub(v[0], v[1]),
            2 => g.try_mul(v[0], v[1]),
            _ => g.try_div(v[0], v[1]),
        })?;
    }

    #[test]
    fn neg_and_scalar_ops(shape in shape_strategy(3), which in 0usize..6, c in -3.0f64..3.0, seed in any::<u64>()) {
        let x = uniform(&shape, -2.0, 2.0, seed);
        let c = if c.abs() < 0.25 { 0.25 } else { c };
        check(&[x], |g, v| match which {
            0 => g.try_neg(v[0]),
            1 => g.try_add_scalar(v[0], c),
            2 => g.try_sub_scalar(v[0], c),
            3 => g.try_scalar_sub(c, v[0]),
            4 => g.try_mul_scalar(v[0], c),
            _ => g.try_div_scalar(v[0], c),
        })?;
    }

    #[test]
    fn matmul_2d_batched_and_transposed(
        m in 1usize..5, k in 1usize..5, n in 1usize..5, batch in 1usize..4,
        layout in 0usize..4, ta in any::<bool>(), tb in any::<bool>(), seed in any::<u64>(),
    ) {
        // layout 0: [m,k]·[k,n]; 1: [b,m,k]·[b,k,n]; 2: [b,m,k]·[k,n]; 3: [1,m,k]·[b,k,n]
        let lhs = |b: Option<usize>| {
            let mat = if ta { vec![k, m] } else { vec![m, k] };
            b.map_or(mat.clone(), |b| [vec![b], mat].concat())
        };
        let rhs = |b: Option<usize>| {
            let mat = if tb { vec![n, k] } else { vec![k, n] };
            b.map_or(mat.clone(), |b| [vec![b], mat].concat())
        };
        let (sa, sb) = match layout {
            0 => (lhs(None), rhs(None)),
            1 => (lhs(Some(batch)), rhs(Some(batch))),
            2 => (lhs(Some(batch)), rhs(None)),
            _ => (lhs(Some(1)), rhs(Some(batch))),
        };
        let a = uniform(&sa, -2.0, 2.0, seed);
        let b = uniform(&sb, -2.0, 2.0, seed ^ 7);
        check(&[a, b], |g, v| g.try_matmul_t(v[0], v[1], ta, tb))?;
    }

    #[test]
    fn linear_with_and_without_bias(
        batch in 1usize..5, time in 0usize..3, in_f in 1usize..6, out_f in 1usize..5, bias in any::<bool>(), seed in any::<u64>(),
    ) {
        // time = 0: x [batch, in]; otherwise x [batch, time, in] (leading axes flattened).
        let xs = if time == 0 { vec![batch, in_f] } else { vec![batch, time, in_f] };
        let mut inputs = vec![uniform(&xs, -2.0, 2.0, seed), uniform(&[in_f, out_f], -1.0, 1.0, seed ^ 3)];
        if bias {
            inputs.push(uniform(&[out_f], -1.0, 1.0, seed ^ 5));
        }
        check(&inputs, |g, v| g.try_linear(v[0], v[1], v.get(2).copied()))?;
    }

    #[test]
    fn sums_and_means(shape in shape_strategy(4), mask in prop::collection::vec(any::<bool>(), 4), keepdims in any::<bool>(), which in 0usize..4, seed in any::<u64>()) {
        let x = uniform(&shape, -2.0, 2.0, seed);
        let axes: Vec<usize> = (0..shape.len()).filter(|&i| mask[i]).collect();
        check(&[x], |g, v| match which {
            0 => g.try_sum(v[0]),
            1 => g.try_mean(v[0]),
            2 => g.try_sum_axes(v[0], &axes, keepdims),
            _ => g.try_mean_axes(v[0], &axes, keepdims),
        })?;
    }

    #[test]
    fn max_along_an_axis(shape in shape_strategy(3), axis in 0usize..3, keepdims in any::<bool>(), seed in any::<u64>()) {
        let axis = axis % shape.len();
        let x = distinct(&shape, seed);
        check(&[x], |g, v| g.try_max_axis(v[0], axis, keepdims))?;
    }

    #[test]
    fn reshape_flatten_permute_transpose(shape in shape_strategy(4), which in 0usize..4, seed in any::<u64>()) {
        let x = uniform(&shape, -2.0, 2.0, seed);
        let n: usize = shape.iter().product();
        // A permutation of the axes drawn from the seed.
        let keys = uniform(&[shape.len()], 0.0, 1.0, seed ^ 9).to_vec();
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        perm.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
        prop_assume!(which != 3 || shape.len() >= 2);
        check(&[x], |g, v| match which {
            0 => g.try_reshape(v[0], &[n]),
            1 => g.try_flatten(v[0]),
            2 => g.try_permute(v[0], &perm),
            _ => g.try_transpose(v[0]),
        })?;
    }

    #[test]
    fn split_and_merge_heads(batch in 1usize..3, seq in 1usize..4, heads in 1usize..4, dim in 1usize..4, seed in any::<u64>()) {
        let x = uniform(&[batch, seq, heads * dim], -2.0, 2.0, seed);
        check(&[x], |g, v| g.try_split_heads(v[0], heads))?;
        let y = uniform(&[batch * heads, seq, dim], -2.0, 2.0, seed ^ 5);
        check(&[y], |g, v| g.try_merge_heads(v[0], heads))?;
    }

    #[test]
    fn concat_and_stack(shape in shape_strategy(3), count in 1usize..4, axis in 0usize..4, extents in prop::collection::vec(1usize..4, 3), stack in any::<bool>(), seed in any::<u64>()) {
        let inputs: Vec<Tensor<f64>> = (0..count)
            .map(|i| {
                let mut s = shape.clone();
                if !stack {
                    let a = axis % s.len();
                    s[a] = extents[i];
                }
                uniform(&s, -2.0, 2.0, seed ^ i as u64)
            })
            .collect();
        if stack {
            let axis = axis % (shape.len() + 1);
            check(&inputs, |g, v| g.try_stack(v, axis))?;
        } else {
            let axis = axis % shape.len();
            check(&inputs, |g, v| g.try_concat(v, axis))?;
        }
    }

    #[test]
    fn slice_and_gather_rows(shape in shape_strategy(3), axis in 0usize..3, cut in (0usize..5, 0usize..5), rows in prop::collection::vec(0usize..8, 0..6), seed in any::<u64>()) {
        let x = uniform(&shape, -2.0, 2.0, seed);
        let axis = axis % shape.len();
        let len = shape[axis];
        let (s, e) = (cut.0 % (len + 1), cut.1 % (len + 1));
        let (start, end) = (s.min(e), s.max(e));
        let indices: Vec<usize> = rows.iter().map(|&r| r % shape[0]).collect();
        check(std::slice::from_ref(&x), |g, v| g.try_slice(v[0], axis, start, end))?;
        check(&[x], |g, v| g.try_gather_rows(v[0], &indices))?;
    }

    #[test]
    fn exp_ln_sqrt_powf(shape in shape_strategy(3), which in 0usize..4, p in -2.0f64..3.0, seed in any::<u64>()) {
        // ln, sqrt and powf on positive inputs in [0.2, 3]; exp on [-2, 2].
        let x = if which == 0 { uniform(&shape, -2.0, 2.0, seed) } else { uniform(&shape, 0.2, 3.0, seed) };
        check(&[x], |g, v| match which {
            0 => g.try_exp(v[0]),
            1 => g.try_ln(v[0]),
            2 => g.try_sqrt(v[0]),
            _ => g.try_powf(v[0], p),
        })?;
    }

    #[test]
    fn abs_and_clamp(shape in shape_strategy(3), seed in any::<u64>()) {
        let x = away_from(&shape, &[0.0, -0.5, 0.7], seed);
        check(std::slice::from_ref(&x), |g, v| g.try_abs(v[0]))?;
        check(&[x], |g, v| g.try_clamp(v[0], -0.5, 0.7))?;
    }

    #[test]
    fn activations(shape in shape_strategy(3), which in 0usize..6, alpha in 0.01f64..2.0, seed in any::<u64>()) {
        let x = away_from(&shape, &[0.0], seed).map(|v| 2.0 * v);
        check(&[x], |g, v| match which {
            0 => g.try_relu(v[0]),
            1 => g.try_leaky_relu(v[0], alpha),
            2 => g.try_elu(v[0], alpha),
            3 => g.try_sigmoid(v[0]),
            4 => g.try_tanh(v[0]),
            _ => g.try_softplus(v[0]),
        })?;
    }

    #[test]
    fn softmax_and_log_softmax(shape in shape_strategy(3), axis in 0usize..3, log in any::<bool>(), seed in any::<u64>()) {
        let axis = axis % shape.len();
        let x = uniform(&shape, -3.0, 3.0, seed);
        check(&[x], |g, v| if log { g.try_log_softmax(v[0], axis) } else { g.try_softmax(v[0], axis) })?;
    }

    #[test]
    fn dropout_with_a_mask(shape in shape_strategy(3), rate in 0.0f64..0.9, broadcast_mask in any::<bool>(), seed in any::<u64>()) {
        let x = uniform(&shape, -2.0, 2.0, seed);
        let mut mask_shape = shape.clone();
        if broadcast_mask {
            mask_shape[0] = 1;
        }
        let mask = Tensor::<f64>::random_bernoulli(&mask_shape, 1.0 - rate, &mut seeded_rng(seed ^ 11)).unwrap();
        check(&[x], |g, v| g.try_dropout(v[0], mask.clone(), rate))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn conv2d_strides_and_padding(
        n in 1usize..3, h in 1usize..8, w in 1usize..8, c in 1usize..4, f in 1usize..4,
        kh in 1usize..4, kw in 1usize..4, sh in 1usize..4, sw in 1usize..3, same in any::<bool>(), bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        prop_assume!(same || (kh <= h && kw <= w));
        let padding = if same { Padding::Same } else { Padding::Valid };
        let mut inputs = vec![uniform(&[n, h, w, c], -2.0, 2.0, seed), uniform(&[kh, kw, c, f], -1.0, 1.0, seed ^ 13)];
        if bias {
            inputs.push(uniform(&[f], -1.0, 1.0, seed ^ 17));
        }
        check(&inputs, |g, v| g.try_conv2d(v[0], v[1], v.get(2).copied(), (sh, sw), padding))?;
    }

    #[test]
    fn pooling_with_overlapping_windows(
        n in 1usize..3, h in 1usize..8, w in 1usize..8, c in 1usize..4,
        ph in 1usize..4, pw in 1usize..4, sh in 1usize..4, sw in 1usize..3, same in any::<bool>(), max in any::<bool>(),
        seed in any::<u64>(),
    ) {
        prop_assume!(same || (ph <= h && pw <= w));
        let padding = if same { Padding::Same } else { Padding::Valid };
        let x = distinct(&[n, h, w, c], seed);
        if max {
            check(&[x], |g, v| g.try_max_pool2d(v[0], (ph, pw), (sh, sw), padding))?;
        } else {
            check(&[x], |g, v| g.try_avg_pool2d(v[0], (ph, pw), (sh, sw), padding))?;
        }
    }

    #[test]
    fn cross_entropy_weights_and_reductions(
        batch in 1usize..6, classes in 1usize..6, weighted in any::<bool>(), reduction in 0usize..3,
        targets in prop::collection::vec(0usize..6, 6), seed in any::<u64>(),
    ) {
        let logits = uniform(&[batch, classes], -4.0, 4.0, seed);
        let targets: Vec<usize> = targets[..batch].iter().map(|&t| t % classes).collect();
        let weights = uniform(&[batch], 0.0, 2.0, seed ^ 19).to_vec();
        let reduction = [Reduction::Mean, Reduction::Sum, Reduction::Unreduced][reduction];
        check(&[logits], |g, v| {
            g.try_cross_entropy_with(v[0], &targets, weighted.then_some(&weights[..]), reduction)
        })?;
    }

    #[test]
    fn bce_and_mse(shape in shape_strategy(3), reduction in 0usize..3, seed in any::<u64>()) {
        let reduction = [Reduction::Mean, Reduction::Sum, Reduction::Unreduced][reduction];
        let logits = uniform(&shape, -6.0, 6.0, seed);
        let targets = uniform(&shape, 0.0, 1.0, seed ^ 23);
        check(&[logits.clone(), targets.clone()], |g, v| g.try_binary_cross_entropy_with_logits_with(v[0], v[1], reduction))?;
        check(&[logits, targets], |g, v| g.try_mse_with(v[0], v[1], reduction))?;
    }

    /// A small CNN classifier built from many ops at once (conv, relu, pools, flatten,
    /// linear, cross-entropy), with every parameter gradchecked: checks that gradients
    /// flow and accumulate correctly through a composition, not just per op.
    #[test]
    fn small_cnn_end_to_end(seed in any::<u64>(), stride in 1usize..3, same in any::<bool>()) {
        let padding = if same { Padding::Same } else { Padding::Valid };
        let x = uniform(&[2, 6, 5, 2], -1.0, 1.0, seed);
        let k = uniform(&[3, 3, 2, 3], -0.5, 0.5, seed ^ 1);
        let b = uniform(&[3], -0.1, 0.1, seed ^ 2);
        let targets = [1usize, 2];
        // Shapes after conv and the 2×2 stride-1 max pool, to size the dense kernel.
        let mut probe = Graph::<f64>::no_grad();
        let (xv, kv, bv) = (probe.input(&x), probe.input(&k), probe.input(&b));
        let y = probe.conv2d(xv, kv, Some(bv), (stride, stride), padding);
        let y = probe.max_pool2d(y, (2, 2), (1, 1), Padding::Valid);
        let feat = probe.flatten(y);
        let in_f = probe.shape(feat)[1];
        let wd = uniform(&[in_f, 3], -0.5, 0.5, seed ^ 3);
        check(&[x, k, b, wd], |g, v| {
            let y = g.try_conv2d(v[0], v[1], Some(v[2]), (stride, stride), padding)?;
            let y = g.try_tanh(y)?; // smooth, so that no input sits on a kink
            let y = g.try_avg_pool2d(y, (2, 2), (1, 1), Padding::Valid)?;
            let y = g.try_flatten(y)?;
            let logits = g.try_linear(y, v[3], None)?;
            let extra = g.try_mean(logits)?; // logits used twice: gradients accumulate
            let loss = g.try_cross_entropy(logits, &targets)?;
            g.try_add(loss, extra)
        })?;
    }
}

/// Parameters and variables are the same kind of leaf to backward: binding an input
/// as a named parameter yields exactly the gradient gradcheck validated for it.
#[test]
fn params_get_the_same_gradients_as_variables() {
    let x = uniform(&[3, 4], -1.0, 1.0, 1);
    let w = uniform(&[4, 2], -1.0, 1.0, 2);
    let run = |as_param: bool| -> Tensor<f64> {
        let mut g = Graph::<f64>::new();
        let xv = g.input(&x);
        let wv = if as_param { g.param("w", &w) } else { g.variable(&w) };
        let y = g.linear(xv, wv, None);
        let y = g.sigmoid(y);
        let loss = g.sum(y);
        let grads = g.backward(loss).unwrap();
        if as_param {
            grads.get("w").unwrap().clone()
        } else {
            grads.wrt(wv).unwrap().clone()
        }
    };
    assert_eq!(run(true), run(false));
    let report = gradcheck(&[x, w], |g, v| {
        let y = g.try_linear(v[0], v[1], None)?;
        let y = g.try_sigmoid(y)?;
        g.try_sum(y)
    })
    .unwrap();
    assert!(report.passes(TOL), "{report}");
}

/// The same small network in f32 and f64: forward values and every gradient agree to
/// f32 precision (relative 1e-4 of each tensor's largest magnitude), so the f32
/// training path runs the rules gradchecked above in f64.
fn network_gradients<T: nn_autograd::Element>(seed: u64) -> Vec<Vec<f64>> {
    let cast = |t: Tensor<f64>| t.cast::<T>();
    let mut g = Graph::<T>::new();
    let x = g.input(cast(uniform(&[3, 7, 6, 2], -1.0, 1.0, seed)));
    let k = g.param("conv.kernel", cast(uniform(&[3, 3, 2, 4], -0.5, 0.5, seed ^ 1)));
    let b = g.param("conv.bias", cast(uniform(&[4], -0.1, 0.1, seed ^ 2)));
    // conv 7×6, stride (2, 1), same → 4×6×4; max-pool 2×3, stride 2 → 2×2×4 = 16 features.
    let w = g.param("dense.kernel", cast(uniform(&[16, 3], -0.5, 0.5, seed ^ 3)));
    let y = g.conv2d(x, k, Some(b), (2, 1), Padding::Same);
    let y = g.elu(y, T::one());
    let y = g.max_pool2d(y, (2, 3), (2, 2), Padding::Valid);
    let y = g.flatten(y);
    let logits = g.linear(y, w, None);
    let sm = g.log_softmax(logits, 1);
    let reg = g.mean(sm);
    let ce = g.cross_entropy(logits, &[0, 2, 1]);
    let loss = g.sub(ce, reg);
    let grads = g.backward(loss).unwrap();
    let mut out = vec![vec![g.value(loss).item().as_f64()]];
    out.extend(grads.iter().map(|(_, t)| t.to_vec().into_iter().map(|v| v.as_f64()).collect()));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let (a, b) = (network_gradients::<f32>(seed), network_gradients::<f64>(seed));
        for (ta, tb) in a.iter().zip(&b) {
            let scale = tb.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
            for (x, y) in ta.iter().zip(tb) {
                prop_assert!((x - y).abs() <= 1e-4 * scale, "f32 {} vs f64 {}", x, y);
            }
        }
    }
}

// ---------------------------------------------------------------- fused epilogues

/// No epilogue, or any of the six, with a parameter where it has one.
fn epilogue() -> impl Strategy<Value = Option<Epilogue>> {
    prop_oneof![
        Just(None),
        Just(Some(Epilogue::Relu)),
        (0.0f64..1.0).prop_map(|a| Some(Epilogue::LeakyRelu(a))),
        (0.1f64..2.0).prop_map(|a| Some(Epilogue::Elu(a))),
        Just(Some(Epilogue::Sigmoid)),
        Just(Some(Epilogue::Tanh)),
        Just(Some(Epilogue::Softplus)),
    ]
}

/// How far the pre-activations of a fused op stay from the kink at 0 of relu,
/// leaky_relu and elu, and the maximum of a pool window from its runner-up, in the
/// gradchecks below. Inputs, kernels and biases lie in `[-1, 1]`, so the stencil's
/// reach (2h = 2e-3) moves a pre-activation by at most 2e-3 and a gap by 4e-3.
const FUSED_MARGIN: f64 = 0.005;

/// Whether the epilogue has a kink at 0.
fn kinked(epilogue: Option<Epilogue>) -> bool {
    matches!(epilogue, Some(Epilogue::Relu | Epilogue::LeakyRelu(_) | Epilogue::Elu(_)))
}

/// Whether every pre-activation is at least [`FUSED_MARGIN`] away from 0.
fn clear_of_zero(z: &Tensor<f64>) -> bool {
    z.to_vec().iter().all(|v| v.abs() >= FUSED_MARGIN)
}

/// Whether every max-pool window (`pool` over `z: [n, h, w, c]`) has its largest
/// pre-activation at least [`FUSED_MARGIN`] above the others, so that no argmax flips
/// within the stencil's reach. Windows below 0 under an epilogue that is flat there
/// (relu) are exempt: every output in them is 0 and gets no gradient.
fn clear_of_ties(z: &Tensor<f64>, pool: &Conv2dGeometry, epilogue: Option<Epilogue>) -> bool {
    let flat_below_zero =
        matches!(epilogue, Some(Epilogue::Relu) | Some(Epilogue::LeakyRelu(0.0)) | Some(Epilogue::Elu(0.0)));
    let s = z.shape();
    let (n, h, w, c) = (s[0], s[1], s[2], s[3]);
    let data = z.to_vec();
    for b in 0..n {
        for oh in 0..pool.out_h {
            for ow in 0..pool.out_w {
                for ch in 0..c {
                    let mut window = Vec::new();
                    for i in 0..pool.kernel_h {
                        for j in 0..pool.kernel_w {
                            let (r, q) = (oh * pool.stride_h + i, ow * pool.stride_w + j);
                            if r < pool.pad_top || q < pool.pad_left || r - pool.pad_top >= h || q - pool.pad_left >= w
                            {
                                continue;
                            }
                            window.push(data[((b * h + r - pool.pad_top) * w + q - pool.pad_left) * c + ch]);
                        }
                    }
                    window.sort_by(|a, b| b.total_cmp(a));
                    if window.len() >= 2
                        && window[0] - window[1] < FUSED_MARGIN
                        && !(flat_below_zero && window[0] < 0.0)
                    {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// Applies the epilogue as its own op (the unfused composition).
fn activation<T: Element>(g: &mut Graph<T>, y: Var, epilogue: Option<Epilogue>) -> Result<Var> {
    match epilogue {
        Some(e) => g.try_activation(y, e),
        None => Ok(y),
    }
}

/// A function building an op's output from its input variables.
type GraphFn<'a, T> = dyn Fn(&mut Graph<T>, &[Var]) -> Result<Var> + 'a;

/// The fused op and its unfused composition give the same value and the same
/// gradients (seeded with fixed random weights) with respect to every input, bit for
/// bit, in `T`. With `data_x`, the first input is data (no gradient wanted).
fn same_bits<T: Element>(
    inputs: &[Tensor<f64>],
    data_x: bool,
    fused: impl Fn(&mut Graph<T>, &[Var]) -> Result<Var>,
    unfused: impl Fn(&mut Graph<T>, &[Var]) -> Result<Var>,
) -> std::result::Result<Vec<u64>, TestCaseError> {
    let bits = |t: &Tensor<T>| t.to_vec().into_iter().map(|v| v.as_f64().to_bits()).collect::<Vec<u64>>();
    let run = |f: &GraphFn<'_, T>| -> Vec<Vec<u64>> {
        let mut g = Graph::<T>::new();
        let vars: Vec<Var> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| if i == 0 && data_x { g.input(t.cast::<T>()) } else { g.variable(t.cast::<T>()) })
            .collect();
        let y = f(&mut g, &vars).unwrap();
        let seed = uniform(g.shape(y), -1.0, 1.0, 99).cast::<T>();
        let grads = g.backward_with_seed(y, seed).unwrap();
        let mut out = vec![bits(g.value(y))];
        out.extend(vars.iter().skip(usize::from(data_x)).map(|&v| bits(grads.wrt(v).unwrap())));
        out
    };
    let (a, b) = (run(&fused), run(&unfused));
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        prop_assert_eq!(a, b, "{} differs (0: the value, then the gradients)", i);
    }
    Ok(a.into_iter().next().unwrap())
}

/// Rounds to multiples of 0.5 when `rounded`: exact zeros before the epilogue and
/// ties in pool windows, which the fused ops must treat as the unfused ones do.
fn maybe_rounded(t: Tensor<f64>, rounded: bool) -> Tensor<f64> {
    if rounded {
        t.map(|v| (v * 2.0).round() / 2.0)
    } else {
        t
    }
}

fn padding_of(same: bool) -> Padding {
    if same {
        Padding::Same
    } else {
        Padding::Valid
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn linear_act_every_epilogue(
        batch in 1usize..5, time in 0usize..3, in_f in 1usize..6, out_f in 1usize..5, bias in any::<bool>(),
        epi in epilogue(), seed in any::<u64>(),
    ) {
        let xs = if time == 0 { vec![batch, in_f] } else { vec![batch, time, in_f] };
        let mut inputs = vec![uniform(&xs, -1.0, 1.0, seed), uniform(&[in_f, out_f], -1.0, 1.0, seed ^ 3)];
        if bias {
            inputs.push(uniform(&[out_f], -1.0, 1.0, seed ^ 5));
        }
        if kinked(epi) {
            let z = linear_value(inputs[0].view(), &inputs[1], inputs.get(2), None).unwrap();
            prop_assume!(clear_of_zero(&z));
        }
        check(&inputs, |g, v| g.try_linear_act(v[0], v[1], v.get(2).copied(), epi))?;
    }

    #[test]
    fn conv2d_act_every_epilogue(
        n in 1usize..3, h in 1usize..7, w in 1usize..7, c in 1usize..3, f in 1usize..4,
        kh in 1usize..4, kw in 1usize..4, sh in 1usize..4, sw in 1usize..3, same in any::<bool>(), bias in any::<bool>(),
        epi in epilogue(), seed in any::<u64>(),
    ) {
        prop_assume!(same || (kh <= h && kw <= w));
        let padding = padding_of(same);
        let mut inputs = vec![uniform(&[n, h, w, c], -1.0, 1.0, seed), uniform(&[kh, kw, c, f], -1.0, 1.0, seed ^ 13)];
        if bias {
            inputs.push(uniform(&[f], -1.0, 1.0, seed ^ 17));
        }
        if kinked(epi) {
            let geo = Conv2dGeometry::new((h, w, c), (kh, kw), (sh, sw), padding).unwrap();
            let z = conv2d_value(inputs[0].view(), &inputs[1], inputs.get(2), &geo, None).unwrap();
            prop_assume!(clear_of_zero(&z));
        }
        check(&inputs, |g, v| g.try_conv2d_act(v[0], v[1], v.get(2).copied(), (sh, sw), padding, epi))?;
    }

    #[test]
    fn conv2d_max_pool_every_epilogue(
        n in 1usize..3, h in 2usize..8, w in 2usize..8, c in 1usize..3, f in 1usize..3, k in 1usize..4,
        stride in 1usize..3, same in any::<bool>(), pool in (1usize..4, 1usize..4), pool_stride in (1usize..4, 1usize..3),
        pool_same in any::<bool>(), bias in any::<bool>(), flatten in any::<bool>(), epi in epilogue(), seed in any::<u64>(),
    ) {
        let padding = padding_of(same);
        let geo = Conv2dGeometry::new((h, w, c), (k, k), (stride, stride), padding);
        prop_assume!(geo.is_ok());
        let geo = geo.unwrap();
        let window = PoolWindow { pool_size: pool, strides: pool_stride, padding: padding_of(pool_same) };
        let pool_geo = Conv2dGeometry::new((geo.out_h, geo.out_w, f), pool, pool_stride, window.padding);
        prop_assume!(pool_geo.is_ok());
        let mut inputs = vec![uniform(&[n, h, w, c], -1.0, 1.0, seed), uniform(&[k, k, c, f], -1.0, 1.0, seed ^ 13)];
        if bias {
            inputs.push(uniform(&[f], -1.0, 1.0, seed ^ 17));
        }
        let z = conv2d_value(inputs[0].view(), &inputs[1], inputs.get(2), &geo, None).unwrap();
        prop_assume!(!kinked(epi) || clear_of_zero(&z));
        prop_assume!(clear_of_ties(&z, &pool_geo.unwrap(), epi));
        check(&inputs, |g, v| {
            g.try_conv2d_max_pool(v[0], v[1], v.get(2).copied(), (stride, stride), padding, epi, window, flatten)
        })?;
    }

    #[test]
    fn linear_act_equals_linear_then_activation(
        batch in 1usize..5, time in 0usize..3, in_f in 1usize..6, out_f in 1usize..5, bias in any::<bool>(),
        epi in epilogue(), data_x in any::<bool>(), f32 in any::<bool>(), rounded in any::<bool>(), seed in any::<u64>(),
    ) {
        let xs = if time == 0 { vec![batch, in_f] } else { vec![batch, time, in_f] };
        let mut inputs = vec![uniform(&xs, -2.0, 2.0, seed), uniform(&[in_f, out_f], -1.0, 1.0, seed ^ 3)];
        if bias {
            inputs.push(uniform(&[out_f], -1.0, 1.0, seed ^ 5));
        }
        let inputs: Vec<Tensor<f64>> = inputs.into_iter().map(|t| maybe_rounded(t, rounded)).collect();
        fn fused<T: Element>(g: &mut Graph<T>, v: &[Var], epi: Option<Epilogue>) -> Result<Var> {
            g.try_linear_act(v[0], v[1], v.get(2).copied(), epi)
        }
        fn unfused<T: Element>(g: &mut Graph<T>, v: &[Var], epi: Option<Epilogue>) -> Result<Var> {
            let y = g.try_linear(v[0], v[1], v.get(2).copied())?;
            activation(g, y, epi)
        }
        if f32 {
            same_bits::<f32>(&inputs, data_x, |g, v| fused(g, v, epi), |g, v| unfused(g, v, epi))?;
        } else {
            let value = same_bits::<f64>(&inputs, data_x, |g, v| fused(g, v, epi), |g, v| unfused(g, v, epi))?;
            // The graph-free value is the graph op's, bit for bit.
            let free = linear_value(inputs[0].view(), &inputs[1], inputs.get(2), epi).unwrap();
            prop_assert_eq!(free.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>(), value);
        }
    }

    #[test]
    fn conv2d_act_and_max_pool_equal_the_unfused_ops(
        n in 1usize..4, h in 2usize..9, w in 2usize..9, c in 1usize..3, f in 1usize..4, k in 1usize..4,
        stride in (1usize..3, 1usize..3), same in any::<bool>(), pool in (1usize..4, 1usize..4),
        pool_stride in (1usize..4, 1usize..3), pool_same in any::<bool>(), bias in any::<bool>(), flatten in any::<bool>(),
        epi in epilogue(), data_x in any::<bool>(), f32 in any::<bool>(), rounded in any::<bool>(), seed in any::<u64>(),
    ) {
        let padding = padding_of(same);
        let geo = Conv2dGeometry::new((h, w, c), (k, k), stride, padding);
        prop_assume!(geo.is_ok());
        let geo = geo.unwrap();
        let window = PoolWindow { pool_size: pool, strides: pool_stride, padding: padding_of(pool_same) };
        prop_assume!(Conv2dGeometry::new((geo.out_h, geo.out_w, f), pool, pool_stride, window.padding).is_ok());
        let mut inputs = vec![uniform(&[n, h, w, c], -1.0, 1.0, seed), uniform(&[k, k, c, f], -1.0, 1.0, seed ^ 13)];
        if bias {
            inputs.push(uniform(&[f], -1.0, 1.0, seed ^ 17));
        }
        let inputs: Vec<Tensor<f64>> = inputs.into_iter().map(|t| maybe_rounded(t, rounded)).collect();
        fn conv_fused<T: Element>(g: &mut Graph<T>, v: &[Var], s: (usize, usize), p: Padding, e: Option<Epilogue>) -> Result<Var> {
            g.try_conv2d_act(v[0], v[1], v.get(2).copied(), s, p, e)
        }
        fn conv_unfused<T: Element>(g: &mut Graph<T>, v: &[Var], s: (usize, usize), p: Padding, e: Option<Epilogue>) -> Result<Var> {
            let y = g.try_conv2d(v[0], v[1], v.get(2).copied(), s, p)?;
            activation(g, y, e)
        }
        #[allow(clippy::too_many_arguments)]
        fn pool_fused<T: Element>(g: &mut Graph<T>, v: &[Var], s: (usize, usize), p: Padding, e: Option<Epilogue>, wd: PoolWindow, flat: bool) -> Result<Var> {
            g.try_conv2d_max_pool(v[0], v[1], v.get(2).copied(), s, p, e, wd, flat)
        }
        #[allow(clippy::too_many_arguments)]
        fn pool_unfused<T: Element>(g: &mut Graph<T>, v: &[Var], s: (usize, usize), p: Padding, e: Option<Epilogue>, wd: PoolWindow, flat: bool) -> Result<Var> {
            let y = conv_unfused(g, v, s, p, e)?;
            let y = g.try_max_pool2d(y, wd.pool_size, wd.strides, wd.padding)?;
            if flat { g.try_flatten(y) } else { Ok(y) }
        }
        let (s, p, e) = (stride, padding, epi);
        if f32 {
            same_bits::<f32>(&inputs, data_x, |g, v| conv_fused(g, v, s, p, e), |g, v| conv_unfused(g, v, s, p, e))?;
            same_bits::<f32>(
                &inputs, data_x,
                |g, v| pool_fused(g, v, s, p, e, window, flatten),
                |g, v| pool_unfused(g, v, s, p, e, window, flatten),
            )?;
        } else {
            let conv = same_bits::<f64>(&inputs, data_x, |g, v| conv_fused(g, v, s, p, e), |g, v| conv_unfused(g, v, s, p, e))?;
            let pooled = same_bits::<f64>(
                &inputs, data_x,
                |g, v| pool_fused(g, v, s, p, e, window, flatten),
                |g, v| pool_unfused(g, v, s, p, e, window, flatten),
            )?;
            // The graph-free values are the graph ops', bit for bit.
            let bits = |t: Tensor<f64>| t.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(conv2d_value(inputs[0].view(), &inputs[1], inputs.get(2), &geo, e).unwrap()), conv);
            let free = conv2d_max_pool_value(inputs[0].view(), &inputs[1], inputs.get(2), &geo, e, window).unwrap();
            prop_assert_eq!(bits(free), pooled);
        }
    }
}

/// The fused ops refuse an epilogue whose derivative cannot be read from the output;
/// the activation ops take any slope.
#[test]
fn epilogue_parameters_must_be_non_negative() {
    let mut g = Graph::<f64>::new();
    let x = g.variable(uniform(&[1, 3, 3, 1], -1.0, 1.0, 1));
    let k = g.variable(uniform(&[2, 2, 1, 2], -1.0, 1.0, 2));
    let w = g.variable(uniform(&[1, 2], -1.0, 1.0, 3));
    let window = PoolWindow { pool_size: (2, 2), strides: (1, 1), padding: Padding::Valid };
    for e in
        [Epilogue::LeakyRelu(-0.1), Epilogue::Elu(-1.0), Epilogue::Elu(f64::NAN), Epilogue::LeakyRelu(f64::INFINITY)]
    {
        let err = g.try_linear_act(x, w, None, Some(e)).unwrap_err().to_string();
        assert!(err.contains("non-negative"), "{err}");
        assert!(g.try_conv2d_act(x, k, None, (1, 1), Padding::Valid, Some(e)).is_err());
        assert!(g.try_conv2d_max_pool(x, k, None, (1, 1), Padding::Valid, Some(e), window, false).is_err());
    }
    assert!(g.try_leaky_relu(x, -0.1).is_ok() && g.try_elu(x, -1.0).is_ok());
}

/// Each epilogue's value and derivative from the output agree with the activation
/// op's value and gradient (one definition, seen from both sides).
#[test]
fn epilogue_scalars_match_the_activation_ops() {
    let xs = [-3.0, -0.5, 0.0, 0.25, 2.0];
    for e in [
        Epilogue::Relu,
        Epilogue::LeakyRelu(0.2),
        Epilogue::Elu(1.5),
        Epilogue::Sigmoid,
        Epilogue::Tanh,
        Epilogue::Softplus,
    ] {
        let mut g = Graph::<f64>::new();
        let x = g.variable(Tensor::from_vec(&[xs.len()], xs.to_vec()));
        let y = g.activation(x, e);
        let s = g.sum(y);
        let grad = g.backward(s).unwrap().wrt(x).unwrap().to_vec();
        for (i, &v) in xs.iter().enumerate() {
            let out = g.value(y).to_vec()[i];
            assert_eq!(e.value(v).to_bits(), out.to_bits(), "{} value at {v}", e.name());
            assert_eq!(e.derivative_from_output(out).to_bits(), grad[i].to_bits(), "{} derivative at {v}", e.name());
        }
    }
}
