//! SimpleRNN, LSTM and GRU: one step with small given weights against values computed
//! by hand from the gate equations; several steps against a plain scalar reference
//! loop written from the same equations; every cell gradchecked (proptest, f64) over
//! 1–4 time steps with respect to inputs, initial states and all weights; Keras
//! defaults (parameter counts, orthogonal recurrent kernels, forget bias 1), specs,
//! Reshape, and save/load.

mod common;

use common::{assert_close, to_autograd, uniform, TOL};
use nn_autograd::{gradcheck, AutogradError, Graph, Var};
use nn_layers::layers::{SimpleRNN, GRU, LSTM};
use nn_layers::{
    rnn, EmbeddingConfig, ForwardCtx, GruConfig, Initializer, Layer, LayerSpec, LstmConfig, Mode, ModelSpec,
    Sequential, SimpleRnnConfig, Tensor,
};
use nn_tensor::random::seeded_rng;
use proptest::prelude::*;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn t(shape: &[usize], v: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(shape, v.to_vec())
}

/// Runs `f` on a no-grad graph with constants `inputs`, returning the output value.
fn eval(inputs: &[Tensor<f64>], f: impl Fn(&mut Graph<f64>, &[Var]) -> Var) -> Tensor<f64> {
    let mut g = Graph::<f64>::no_grad();
    let vars: Vec<Var> = inputs.iter().map(|x| g.constant(x)).collect();
    let y = f(&mut g, &vars);
    g.value(y).clone()
}

// ---------------------------------------------------------------- one step by hand

#[test]
fn lstm_one_step_by_hand() {
    // x = 0.5, h0 = 0.1, c0 = 0.2, one feature, one unit; gate blocks i, f, c̃, o.
    // kernel W = [0.1, 0.2, 0.3, 0.4], recurrent U = [0.5, −0.5, 0.25, −0.25],
    // bias b = [0, 1, 0, 0]:
    //   z_i = 0.5·0.1 + 0.1·0.5 + 0     = 0.1    i  = σ(0.1)    = 0.52497918747894
    //   z_f = 0.5·0.2 − 0.1·0.5 + 1     = 1.05   f  = σ(1.05)   = 0.740774899182154
    //   z_c = 0.5·0.3 + 0.1·0.25        = 0.175  c̃ = tanh(0.175) = 0.17323515783466012
    //   z_o = 0.5·0.4 − 0.1·0.25        = 0.175  o  = σ(0.175)  = 0.5436386872370789
    //   c = f·0.2 + i·c̃ = 0.2390998322392566,  h = o·tanh(c) = 0.1275622756100837
    let inputs = [
        t(&[1, 1, 1], &[0.5]),
        t(&[1, 4], &[0.1, 0.2, 0.3, 0.4]),
        t(&[1, 4], &[0.5, -0.5, 0.25, -0.25]),
        t(&[4], &[0.0, 1.0, 0.0, 0.0]),
        t(&[1, 1], &[0.1]),
        t(&[1, 1], &[0.2]),
    ];
    let y = eval(&inputs, |g, v| rnn::lstm(g, v[0], v[1], v[2], Some(v[3]), v[4], v[5]).unwrap());
    assert_eq!(y.shape(), [1, 1, 2]);
    let (i, f, c_hat, o) = (sigmoid(0.1), sigmoid(1.05), 0.175f64.tanh(), sigmoid(0.175));
    let c = f * 0.2 + i * c_hat;
    let h = o * c.tanh();
    assert_close(&[h, c], &[0.1275622756100837, 0.2390998322392566], 1e-15);
    assert_close(&y.to_vec(), &[h, c], 1e-15);
}

#[test]
fn gru_one_step_by_hand() {
    // x = 0.5, h0 = 0.1; gate blocks z, r, h̃; W = [0.1, 0.2, 0.3], U = [0.5, −0.5, 0.25],
    // b_in = [0.01, 0.02, 0.03], b_rec = [0.04, 0.05, 0.06] (reset_after):
    //   input side:     x·W + b_in       = [0.06, 0.12, 0.18]
    //   recurrent side: h0·U + b_rec     = [0.09, 0.0, 0.085]
    //   z = σ(0.06 + 0.09) = σ(0.15) = 0.5374298453437496
    //   r = σ(0.12 + 0.0)  = σ(0.12) = 0.5299640517645717
    //   h̃ = tanh(0.18 + r·0.085)      = 0.22132311324150475
    //   h = z·h0 + (1 − z)·h̃           = 0.15612045125550064
    let inputs = [
        t(&[1, 1, 1], &[0.5]),
        t(&[1, 3], &[0.1, 0.2, 0.3]),
        t(&[1, 3], &[0.5, -0.5, 0.25]),
        t(&[2, 3], &[0.01, 0.02, 0.03, 0.04, 0.05, 0.06]),
        t(&[1, 1], &[0.1]),
    ];
    let y = eval(&inputs, |g, v| rnn::gru(g, v[0], v[1], v[2], Some(v[3]), v[4]).unwrap());
    let (z, r) = (sigmoid(0.15), sigmoid(0.12));
    let h_hat = (0.18 + r * 0.085).tanh();
    let h = z * 0.1 + (1.0 - z) * h_hat;
    assert_close(&[h], &[0.15612045125550064], 1e-15);
    assert_close(&y.to_vec(), &[h], 1e-15);
}

#[test]
fn simple_rnn_one_step_by_hand() {
    // x = [0.5, −1], W = [[0.3], [0.2]], U = [[0.5]], b = [0.1], h0 = 0.2:
    //   h = tanh(0.15 − 0.2 + 0.1 + 0.1) = tanh(0.15) = 0.14888503362331798
    let inputs =
        [t(&[1, 1, 2], &[0.5, -1.0]), t(&[2, 1], &[0.3, 0.2]), t(&[1, 1], &[0.5]), t(&[1], &[0.1]), t(&[1, 1], &[0.2])];
    let y = eval(&inputs, |g, v| rnn::simple_rnn(g, v[0], v[1], v[2], Some(v[3]), v[4]).unwrap());
    assert_close(&y.to_vec(), &[0.14888503362331798], 1e-15);
}

// ---------------------------------------------------------------- scalar reference

/// `Σ_f x[f]·w[f, col]` for a row-major `[rows, cols]` matrix `w`.
fn dot_col(x: &[f64], w: &[f64], cols: usize, col: usize) -> f64 {
    x.iter().enumerate().map(|(f, xv)| xv * w[f * cols + col]).sum()
}

/// The gate equations as plain loops, one sample: returns every `h_t` (and `c_t`).
fn reference(cell: &str, x: &[Vec<f64>], w: &[f64], u: &[f64], b: &[f64], h0: &[f64], c0: &[f64]) -> Vec<Vec<f64>> {
    let n = h0.len();
    let (mut h, mut c) = (h0.to_vec(), c0.to_vec());
    let mut out = Vec::new();
    for xt in x {
        match cell {
            "rnn" => {
                h = (0..n).map(|k| (dot_col(xt, w, n, k) + dot_col(&h, u, n, k) + b[k]).tanh()).collect();
                out.push(h.clone());
            }
            "lstm" => {
                let z = |gate: usize, k: usize| {
                    let col = gate * n + k;
                    dot_col(xt, w, 4 * n, col) + dot_col(&h, u, 4 * n, col) + b[col]
                };
                let mut new_h = vec![0.0; n];
                for k in 0..n {
                    let (i, f, g, o) = (sigmoid(z(0, k)), sigmoid(z(1, k)), z(2, k).tanh(), sigmoid(z(3, k)));
                    c[k] = f * c[k] + i * g;
                    new_h[k] = o * c[k].tanh();
                }
                h = new_h;
                let mut both = h.clone();
                both.extend(&c);
                out.push(both);
            }
            "gru" => {
                let inp = |gate: usize, k: usize| dot_col(xt, w, 3 * n, gate * n + k) + b[gate * n + k];
                let rec = |gate: usize, k: usize| dot_col(&h, u, 3 * n, gate * n + k) + b[3 * n + gate * n + k];
                let new_h: Vec<f64> = (0..n)
                    .map(|k| {
                        let z = sigmoid(inp(0, k) + rec(0, k));
                        let r = sigmoid(inp(1, k) + rec(1, k));
                        let hh = (inp(2, k) + r * rec(2, k)).tanh();
                        z * h[k] + (1.0 - z) * hh
                    })
                    .collect();
                h = new_h;
                out.push(h.clone());
            }
            _ => unreachable!(),
        }
    }
    out
}

#[test]
fn several_steps_match_the_scalar_reference() {
    // 3 samples run as one chunk; 130 as three chunks of 44, 44 and 42 samples, each
    // running the whole sequence on its own (rnn's CHUNK_ROWS is 64).
    for batch in [3, 130] {
        several_steps_match_the_scalar_reference_at(batch);
    }
}

fn several_steps_match_the_scalar_reference_at(batch: usize) {
    let (time, feats, n) = (5, 2, 3);
    for (cell, gates) in [("rnn", 1), ("lstm", 4), ("gru", 3)] {
        let x = uniform(&[batch, time, feats], -1.0, 1.0, 1);
        let w = uniform(&[feats, gates * n], -0.8, 0.8, 2);
        let u = uniform(&[n, gates * n], -0.8, 0.8, 3);
        let b_shape = if cell == "gru" { vec![2, 3 * n] } else { vec![gates * n] };
        let b = uniform(&b_shape, -0.5, 0.5, 4);
        let h0 = uniform(&[batch, n], -0.5, 0.5, 5);
        let c0 = uniform(&[batch, n], -0.5, 0.5, 6);
        let inputs = [x.clone(), w.clone(), u.clone(), b.clone(), h0.clone(), c0.clone()];
        let y = eval(&inputs, |g, v| match cell {
            "rnn" => rnn::simple_rnn(g, v[0], v[1], v[2], Some(v[3]), v[4]).unwrap(),
            "lstm" => rnn::lstm(g, v[0], v[1], v[2], Some(v[3]), v[4], v[5]).unwrap(),
            _ => rnn::gru(g, v[0], v[1], v[2], Some(v[3]), v[4]).unwrap(),
        });
        let (xv, hv, cv) = (x.to_vec(), h0.to_vec(), c0.to_vec());
        let mut want = Vec::new();
        for s in 0..batch {
            let xs: Vec<Vec<f64>> =
                (0..time).map(|k| xv[(s * time + k) * feats..(s * time + k + 1) * feats].to_vec()).collect();
            let r = reference(
                cell,
                &xs,
                &w.to_vec(),
                &u.to_vec(),
                &b.to_vec(),
                &hv[s * n..(s + 1) * n],
                &cv[s * n..(s + 1) * n],
            );
            want.extend(r.into_iter().flatten());
        }
        assert_close(&y.to_vec(), &want, 1e-13);
    }
}

// ---------------------------------------------------------------- gradchecks

/// Cell `cell` (0 SimpleRNN, 1 LSTM, 2 GRU) on `[x, kernel, recurrent kernel, bias,
/// h0, c0]`. c0 is unused by the other cells: it is folded in (times 0) so that its
/// zero gradient is checked too.
fn run_cell(g: &mut Graph<f64>, v: &[Var], cell: usize, batch: usize, units: usize) -> Result<Var, AutogradError> {
    match cell {
        1 => rnn::lstm(g, v[0], v[1], v[2], Some(v[3]), v[4], v[5]).map_err(to_autograd),
        _ => {
            let y = if cell == 0 {
                rnn::simple_rnn(g, v[0], v[1], v[2], Some(v[3]), v[4])
            } else {
                rnn::gru(g, v[0], v[1], v[2], Some(v[3]), v[4])
            }
            .map_err(to_autograd)?;
            let c = g.try_mul_scalar(v[5], 0.0)?;
            let c = g.try_reshape(c, &[batch, 1, units])?;
            g.try_add(y, c)
        }
    }
}

/// A built layer's `forward_with_state` on `[x, params..., states...]`.
type RunLayer = dyn Fn(&mut Graph<f64>, &[Var]) -> nn_layers::Result<nn_layers::layers::RecurrentOutput>;

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Gradients of every cell w.r.t. x, kernel, recurrent kernel, bias and the initial
    /// state(s), over 1–4 time steps, against central finite differences.
    #[test]
    fn cells_gradcheck(batch in 1usize..3, time in 1usize..5, feats in 1usize..4, units in 1usize..4,
                       cell in 0usize..3, seed in 0u64..1000) {
        let gates = [1, 4, 3][cell];
        let b_shape = if cell == 2 { vec![2, 3 * units] } else { vec![gates * units] };
        let inputs = vec![
            uniform(&[batch, time, feats], -1.5, 1.5, seed),
            uniform(&[feats, gates * units], -1.0, 1.0, seed + 1),
            uniform(&[units, gates * units], -1.0, 1.0, seed + 2),
            uniform(&b_shape, -1.0, 1.0, seed + 3),
            uniform(&[batch, units], -1.0, 1.0, seed + 4),
            uniform(&[batch, units], -1.0, 1.0, seed + 5),
        ];
        let report = gradcheck(&inputs, |g, v| run_cell(g, v, cell, batch, units)).unwrap();
        prop_assert!(report.passes(TOL), "{report}");
    }

    /// The layers (slicing out the last state, LSTM's h from its [h, c] output, the
    /// final states of return_state, and no bias) gradchecked through forward_with_state.
    #[test]
    fn layers_gradcheck(batch in 1usize..3, time in 1usize..5, feats in 1usize..3, units in 1usize..3,
                        cell in 0usize..3, sequences in any::<bool>(), use_bias in any::<bool>(), seed in 0u64..1000) {
        let shape = [time, feats];
        let (layer, nstates): (Box<RunLayer>, usize) = match cell {
            0 => {
                let l = SimpleRNN::build(SimpleRnnConfig::new(units).with_return_sequences(sequences).with_return_state(true).with_bias(use_bias), &shape).unwrap();
                let np = Layer::<f64>::param_specs(&l).len();
                (Box::new(move |g, v| l.forward_with_state(g, v[0], &v[1..1 + np], Some(&v[1 + np..]))), 1)
            }
            1 => {
                let l = LSTM::build(LstmConfig::new(units).with_return_sequences(sequences).with_return_state(true).with_bias(use_bias), &shape).unwrap();
                let np = Layer::<f64>::param_specs(&l).len();
                (Box::new(move |g, v| l.forward_with_state(g, v[0], &v[1..1 + np], Some(&v[1 + np..]))), 2)
            }
            _ => {
                let l = GRU::build(GruConfig::new(units).with_return_sequences(sequences).with_return_state(true).with_bias(use_bias), &shape).unwrap();
                let np = Layer::<f64>::param_specs(&l).len();
                (Box::new(move |g, v| l.forward_with_state(g, v[0], &v[1..1 + np], Some(&v[1 + np..]))), 1)
            }
        };
        let gates = [1, 4, 3][cell];
        let mut inputs = vec![
            uniform(&[batch, time, feats], -1.5, 1.5, seed),
            uniform(&[feats, gates * units], -1.0, 1.0, seed + 1),
            uniform(&[units, gates * units], -1.0, 1.0, seed + 2),
        ];
        if use_bias {
            inputs.push(uniform(&if cell == 2 { vec![2, 3 * units] } else { vec![gates * units] }, -1.0, 1.0, seed + 3));
        }
        for k in 0..nstates {
            inputs.push(uniform(&[batch, units], -1.0, 1.0, seed + 4 + k as u64));
        }
        let report = gradcheck(&inputs, |g, v| {
            let out = layer(g, v).map_err(to_autograd)?;
            let want = if sequences { vec![batch, time, units] } else { vec![batch, units] };
            assert_eq!(g.value(out.output).shape(), &want[..]);
            assert_eq!(out.states.len(), nstates);
            // Weigh the output and every final state: L = Σ output + Σ_k (k + 2)·state_k.
            let mut total = g.try_sum(out.output)?;
            for (k, &s) in out.states.iter().enumerate() {
                let s = g.try_sum(s)?;
                let s = g.try_mul_scalar(s, k as f64 + 2.0)?;
                total = g.try_add(total, s)?;
            }
            Ok(total)
        }).unwrap();
        prop_assert!(report.passes(TOL), "{report}");
    }
}

/// Gradients through a batch of three chunks (130 samples; rnn's CHUNK_ROWS is 64),
/// each chunk running its own backpropagation through time, against central finite
/// differences for every cell.
#[test]
fn gradients_over_several_batch_chunks_gradcheck() {
    let (batch, time, feats, units) = (130, 3, 1, 2);
    for cell in 0..3 {
        let gates = [1, 4, 3][cell];
        let b_shape = if cell == 2 { vec![2, 3 * units] } else { vec![gates * units] };
        let inputs = vec![
            uniform(&[batch, time, feats], -1.5, 1.5, 11),
            uniform(&[feats, gates * units], -1.0, 1.0, 12),
            uniform(&[units, gates * units], -1.0, 1.0, 13),
            uniform(&b_shape, -1.0, 1.0, 14),
            uniform(&[batch, units], -1.0, 1.0, 15),
            uniform(&[batch, units], -1.0, 1.0, 16),
        ];
        let report = gradcheck(&inputs, |g, v| run_cell(g, v, cell, batch, units)).unwrap();
        assert!(report.passes(TOL), "cell {cell}: {report}");
    }
}

/// Zero time steps or zero samples: empty outputs and zero gradients, no panic.
#[test]
fn empty_sequences_and_batches() {
    for (batch, time) in [(2, 0), (0, 3)] {
        for cell in 0..3 {
            let gates = [1, 4, 3][cell];
            let b_shape = if cell == 2 { vec![2, 3 * 2] } else { vec![gates * 2] };
            let inputs = [
                uniform(&[batch, time, 3], -1.0, 1.0, 1),
                uniform(&[3, gates * 2], -1.0, 1.0, 2),
                uniform(&[2, gates * 2], -1.0, 1.0, 3),
                uniform(&b_shape, -1.0, 1.0, 4),
                uniform(&[batch, 2], -1.0, 1.0, 5),
                uniform(&[batch, 2], -1.0, 1.0, 6),
            ];
            let mut g = Graph::<f64>::new();
            let v: Vec<Var> = inputs.iter().map(|t| g.variable(t.clone())).collect();
            let y = match cell {
                0 => rnn::simple_rnn(&mut g, v[0], v[1], v[2], Some(v[3]), v[4]).unwrap(),
                1 => rnn::lstm(&mut g, v[0], v[1], v[2], Some(v[3]), v[4], v[5]).unwrap(),
                _ => rnn::gru(&mut g, v[0], v[1], v[2], Some(v[3]), v[4]).unwrap(),
            };
            let width = if cell == 1 { 4 } else { 2 };
            assert_eq!(g.value(y).shape(), &[batch, time, width]);
            let seed = Tensor::zeros(&[batch, time, width]);
            let grads = g.backward_with_seed(y, seed).unwrap();
            for &var in &v[..5] {
                assert!(grads.wrt(var).unwrap().to_vec().iter().all(|&d| d == 0.0), "cell {cell}");
            }
        }
    }
}

#[test]
fn final_states_are_the_last_step_of_the_sequence() {
    let l = LSTM::build(LstmConfig::new(2).with_return_sequences(true).with_return_state(true), &[3, 2]).unwrap();
    let params: Vec<Tensor<f64>> =
        Layer::<f64>::param_specs(&l).iter().enumerate().map(|(k, p)| uniform(&p.shape, -1.0, 1.0, k as u64)).collect();
    let mut g = Graph::<f64>::no_grad();
    let x = g.input(uniform(&[2, 3, 2], -1.0, 1.0, 9));
    let pv: Vec<Var> = params.iter().map(|p| g.constant(p)).collect();
    let out = l.forward_with_state(&mut g, x, &pv, None).unwrap();
    let seq = g.value(out.output).to_vec();
    let h = g.value(out.states[0]).to_vec();
    // output [2, 3, 2]: the last step of sample s is seq[s·6 + 4 .. s·6 + 6].
    assert_eq!(h, [seq[4], seq[5], seq[10], seq[11]]);
    // c_T from the raw op: columns 2..4 of the last step.
    let raw = eval(&[g.value(x).clone(), params[0].clone(), params[1].clone(), params[2].clone()], |g, v| {
        let z = g.constant(Tensor::zeros(&[2, 2]));
        rnn::lstm(g, v[0], v[1], v[2], Some(v[3]), z, z).unwrap()
    })
    .to_vec();
    assert_eq!(g.value(out.states[1]).to_vec(), [raw[8 + 2], raw[8 + 3], raw[20 + 2], raw[20 + 3]]);
}

// ---------------------------------------------------------------- Keras defaults

#[test]
fn parameter_counts_follow_keras() {
    // LSTM: 4·(28·128 + 128·128 + 128) = 80,384; Dense(10): 128·10 + 10 = 1,290.
    let spec = ModelSpec::lstm_classifier(&[28, 28, 1], 128, 10).unwrap();
    let model = Sequential::<f32>::new(spec, 0).unwrap();
    assert_eq!(model.num_parameters(), (80_384 + 1_290, 0));
    let summary = model.summary();
    assert!(summary.contains("layers.1 (LSTM)") && summary.contains("80,384"), "{summary}");
    assert!(summary.contains("layers.0 (Reshape)") && summary.contains("(None, 28, 28)"), "{summary}");
    // GRU (reset_after): 3·(28·64 + 64·64 + 2·64) = 18,048; SimpleRNN: 28·32 + 32·32 + 32 = 1,952.
    let gru = Sequential::<f32>::new(ModelSpec::new(&[28, 28], vec![LayerSpec::gru(64)]), 0).unwrap();
    assert_eq!(gru.num_parameters().0, 3 * (28 * 64 + 64 * 64 + 2 * 64));
    assert_eq!(gru.num_parameters().0, 18_048);
    let srnn = Sequential::<f32>::new(ModelSpec::new(&[28, 28], vec![LayerSpec::simple_rnn(32)]), 0).unwrap();
    assert_eq!(srnn.num_parameters().0, 1_952);
    let names: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["layers.1.kernel", "layers.1.recurrent_kernel", "layers.1.bias", "layers.2.kernel", "layers.2.bias"]
    );
}

#[test]
fn initial_weights_follow_keras() {
    let units = 16;
    let model = Sequential::<f64>::new(ModelSpec::new(&[5, 8], vec![LayerSpec::lstm(units)]), 3).unwrap();
    let p = model.parameters();
    // Recurrent kernel [16, 64] orthogonal: its rows are orthonormal, U·Uᵀ = I.
    let u = p[1].value.to_vec();
    let cols = 4 * units;
    for a in 0..units {
        for b in 0..units {
            let dot: f64 = (0..cols).map(|k| u[a * cols + k] * u[b * cols + k]).sum();
            let want = if a == b { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < 1e-12, "row {a}·row {b} = {dot}");
        }
    }
    // Kernel [8, 64] Glorot uniform: |w| ≤ √(6 / (8 + 64)), and not all tiny.
    let limit = (6.0f64 / (8.0 + 64.0)).sqrt();
    let w = p[0].value.to_vec();
    assert!(w.iter().all(|v| v.abs() <= limit) && w.iter().any(|v| v.abs() > limit / 2.0));
    // Bias: zeros except the forget gate's block, ones (unit_forget_bias).
    let bias = p[2].value.to_vec();
    let want: Vec<f64> = (0..cols).map(|k| if (units..2 * units).contains(&k) { 1.0 } else { 0.0 }).collect();
    assert_eq!(bias, want);
    // Without unit_forget_bias: all zeros.
    let spec = ModelSpec::new(&[5, 8], vec![LayerSpec::LSTM(LstmConfig::new(units).with_unit_forget_bias(false))]);
    let m = Sequential::<f64>::new(spec, 3).unwrap();
    assert!(m.parameters()[2].value.to_vec().iter().all(|&v| v == 0.0));
    // A tall orthogonal matrix [6, 4] has orthonormal columns.
    let q =
        Initializer::Orthogonal.init::<f64>(&[6, 4], nn_layers::Fans::of_shape(&[6, 4]), &mut seeded_rng(1)).unwrap();
    let q = q.to_vec();
    for a in 0..4 {
        for b in 0..4 {
            let dot: f64 = (0..6).map(|r| q[r * 4 + a] * q[r * 4 + b]).sum();
            assert!((dot - if a == b { 1.0 } else { 0.0 }).abs() < 1e-12);
        }
    }
    assert!(Initializer::Orthogonal.init::<f64>(&[5], nn_layers::Fans::of_shape(&[5]), &mut seeded_rng(1)).is_err());
}

// ---------------------------------------------------------------- specs and models

#[test]
fn specs_round_trip_with_keras_defaults() {
    let text = r#"{"input_shape": [28, 28, 1], "layers": [
        {"type": "Reshape", "target_shape": [28, 28]},
        {"type": "LSTM", "units": 32, "return_sequences": true},
        {"type": "GRU", "units": 16, "return_sequences": true},
        {"type": "SimpleRNN", "units": 8},
        {"type": "Dense", "units": 10, "activation": "softmax"}]}"#;
    let spec = ModelSpec::from_json(text).unwrap();
    let LayerSpec::LSTM(l) = spec.layers[1].layer else { panic!("{:?}", spec.layers[1]) };
    assert_eq!(l, LstmConfig::new(32).with_return_sequences(true));
    assert!(l.unit_forget_bias && l.use_bias && !l.return_state);
    assert_eq!(l.recurrent_initializer, Initializer::Orthogonal);
    assert_eq!(l.kernel_initializer, Initializer::GlorotUniform);
    let LayerSpec::GRU(gc) = spec.layers[2].layer else { panic!() };
    assert!(gc.reset_after);
    assert_eq!(ModelSpec::from_json(&spec.to_json()).unwrap(), spec);
    let model = Sequential::<f32>::new(spec, 1).unwrap();
    assert_eq!(model.layers()[1].output_shape(), [28, 32]);
    assert_eq!(model.layers()[2].output_shape(), [28, 16]);
    assert_eq!(model.layers()[3].output_shape(), [8]);
    let mut g = Graph::no_grad();
    let x = g.input(Tensor::<f32>::zeros(&[3, 28, 28, 1]));
    let mut rng = seeded_rng(0);
    let y = model.forward(&mut g, x, &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
    assert_eq!(g.value(y).shape(), [3, 10]);
}

#[test]
fn bad_recurrent_settings_are_errors() {
    let build = |layers: Vec<LayerSpec>, input: &[usize]| Sequential::<f32>::new(ModelSpec::new(input, layers), 0);
    let e = build(vec![LayerSpec::lstm(4)], &[28, 28, 1]).unwrap_err().to_string();
    assert!(e.contains("layer 0 (LSTM)") && e.contains("[time, features]") && e.contains("[28, 28, 1]"), "{e}");
    let e = build(vec![LayerSpec::lstm(0)], &[5, 2]).unwrap_err().to_string();
    assert!(e.contains("units must be at least 1"), "{e}");
    let e = build(vec![LayerSpec::LSTM(LstmConfig::new(3).with_return_state(true))], &[5, 2]).unwrap_err().to_string();
    assert!(e.contains("return_state"), "{e}");
    let mut gru = GruConfig::new(3);
    gru.reset_after = false;
    let e = build(vec![LayerSpec::GRU(gru)], &[5, 2]).unwrap_err().to_string();
    assert!(e.contains("reset_after"), "{e}");
    let e = build(vec![LayerSpec::reshape(&[27, 28]).unwrap()], &[28, 28, 1]).unwrap_err().to_string();
    assert!(e.contains("layer 0 (Reshape)") && e.contains("756 elements"), "{e}");
    assert!(LayerSpec::reshape(&[0, 3]).is_err());
    let e = ModelSpec::from_json(r#"{"input_shape": [4], "layers": [{"type": "Reshape", "target_shape": []}]}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("target_shape"), "{e}");
    let e =
        ModelSpec::from_json(r#"{"input_shape": [4, 2], "layers": [{"type": "LSTM", "units": 3, "dropout": 0.1}]}"#)
            .unwrap_err()
            .to_string();
    assert!(e.contains("unknown field `dropout`"), "{e}");
}

#[test]
fn embedding_then_lstm_and_out_of_vocabulary_ids() {
    let spec = ModelSpec::new(
        &[4],
        vec![
            LayerSpec::Embedding(EmbeddingConfig::new(10, 3)),
            LayerSpec::LSTM(LstmConfig::new(5)),
            LayerSpec::dense(2, nn_layers::Activation::Softmax),
        ],
    );
    let model = Sequential::<f32>::new(spec, 2).unwrap();
    let mut rng = seeded_rng(0);
    let mut g = Graph::no_grad();
    let x = g.input(Tensor::<f32>::from_vec(&[2, 4], vec![1., 2., 3., 9., 0., 0., 5., 4.]));
    let y = model.forward(&mut g, x, &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
    assert_eq!(g.value(y).shape(), [2, 2]);
    let mut g = Graph::no_grad();
    let x = g.input(Tensor::<f32>::from_vec(&[1, 4], vec![1., 2., 10., 0.]));
    let e = model.forward(&mut g, x, &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap_err().to_string();
    assert!(e.contains("layer 0 (Embedding)") && e.contains("index 10") && e.contains("[0, 10)"), "{e}");
}

#[test]
fn lstm_model_saves_and_loads_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::new(
        &[6, 3],
        vec![
            LayerSpec::GRU(GruConfig::new(4).with_return_sequences(true)),
            LayerSpec::lstm(5),
            LayerSpec::dense(1, nn_layers::Activation::Linear),
        ],
    );
    let model = Sequential::<f32>::new(spec, 11).unwrap();
    model.save(dir.path()).unwrap();
    let (loaded, _) = Sequential::<f32>::load(dir.path()).unwrap();
    let names: Vec<&str> = loaded.parameters().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "layers.0.kernel",
            "layers.0.recurrent_kernel",
            "layers.0.bias",
            "layers.1.kernel",
            "layers.1.recurrent_kernel",
            "layers.1.bias",
            "layers.2.kernel",
            "layers.2.bias"
        ]
    );
    assert_eq!(loaded.parameters()[0].shape(), [3, 12]);
    assert_eq!(loaded.parameters()[2].shape(), [2, 12]);
    let x = Tensor::<f32>::from_vec(
        &[4, 6, 3],
        uniform(&[4, 6, 3], -1.0, 1.0, 5).to_vec().iter().map(|&v| v as f32).collect(),
    );
    let run = |m: &Sequential<f32>| {
        let mut g = Graph::no_grad();
        let xv = g.input(x.clone());
        let mut rng = seeded_rng(0);
        let y = m.forward(&mut g, xv, &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
        g.value(y).to_vec()
    };
    let (a, b) = (run(&model), run(&loaded));
    assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // Three chunks of samples (150 > 2·CHUNK_ROWS), run side by side on 2 or 3
    // threads and one after another on 1; and one chunk of 40 samples, whose per-step
    // products split their rows between the threads: forward values and every
    // gradient must match bit for bit.
    let (time, feats, units) = (3, 5, 96);
    let run = |threads: usize, cell: usize, batch: usize| -> Vec<u32> {
        nn_tensor::set_num_threads(threads);
        let gates = [1, 4, 3][cell];
        let b_shape = if cell == 2 { vec![2, 3 * units] } else { vec![gates * units] };
        let f32s = |t: Tensor<f64>| Tensor::<f32>::from_vec(t.shape(), t.to_vec().iter().map(|&v| v as f32).collect());
        let mut g = Graph::<f32>::new();
        let x = g.variable(f32s(uniform(&[batch, time, feats], -1.0, 1.0, 1)));
        let w = g.param("w", f32s(uniform(&[feats, gates * units], -0.3, 0.3, 2)));
        let u = g.param("u", f32s(uniform(&[units, gates * units], -0.3, 0.3, 3)));
        let b = g.param("b", f32s(uniform(&b_shape, -0.3, 0.3, 4)));
        let h0 = g.param("h0", f32s(uniform(&[batch, units], -0.5, 0.5, 5)));
        let c0 = g.param("c0", f32s(uniform(&[batch, units], -0.5, 0.5, 6)));
        let y = match cell {
            0 => rnn::simple_rnn(&mut g, x, w, u, Some(b), h0).unwrap(),
            1 => rnn::lstm(&mut g, x, w, u, Some(b), h0, c0).unwrap(),
            _ => rnn::gru(&mut g, x, w, u, Some(b), h0).unwrap(),
        };
        let seed = f32s(uniform(g.value(y).shape(), -1.0, 1.0, 7));
        let mut bits: Vec<u32> = g.value(y).to_vec().iter().map(|v| v.to_bits()).collect();
        let grads = g.backward_with_seed(y, seed).unwrap();
        for (_, t) in grads.iter() {
            bits.extend(t.to_vec().iter().map(|v| v.to_bits()));
        }
        bits.extend(grads.wrt(x).unwrap().to_vec().iter().map(|v| v.to_bits()));
        bits
    };
    for batch in [150, 40] {
        for cell in 0..3 {
            let one = run(1, cell, batch);
            let two = run(2, cell, batch);
            let three = run(3, cell, batch);
            assert!(one == two && one == three, "cell {cell}, batch {batch}");
        }
    }
    nn_tensor::set_num_threads(0);
}

#[test]
fn inference_forward_matches_the_training_forward_bit_for_bit() {
    // Without a gradient to compute the LSTM keeps one step of pre-activations per
    // chunk instead of every step's: the values must not change. Several chunks
    // (150 samples) and one chunk split over the pool (40), on 2 threads.
    let (time, feats, units) = (4, 5, 40);
    nn_tensor::set_num_threads(2);
    for batch in [150, 40] {
        for cell in 0..3 {
            let gates = [1, 4, 3][cell];
            let b_shape = if cell == 2 { vec![2, 3 * units] } else { vec![gates * units] };
            let f32s =
                |t: Tensor<f64>| Tensor::<f32>::from_vec(t.shape(), t.to_vec().iter().map(|&v| v as f32).collect());
            let values = [
                f32s(uniform(&[batch, time, feats], -1.0, 1.0, 1)),
                f32s(uniform(&[feats, gates * units], -0.3, 0.3, 2)),
                f32s(uniform(&[units, gates * units], -0.3, 0.3, 3)),
                f32s(uniform(&b_shape, -0.3, 0.3, 4)),
                f32s(uniform(&[batch, units], -0.5, 0.5, 5)),
                f32s(uniform(&[batch, units], -0.5, 0.5, 6)),
            ];
            let run = |mut g: Graph<f32>, train: bool| -> Vec<u32> {
                let v: Vec<Var> = values
                    .iter()
                    .enumerate()
                    .map(
                        |(k, t)| {
                            if train && k > 0 {
                                g.param(&format!("p{k}"), t.clone())
                            } else {
                                g.variable(t.clone())
                            }
                        },
                    )
                    .collect();
                let y = match cell {
                    0 => rnn::simple_rnn(&mut g, v[0], v[1], v[2], Some(v[3]), v[4]).unwrap(),
                    1 => rnn::lstm(&mut g, v[0], v[1], v[2], Some(v[3]), v[4], v[5]).unwrap(),
                    _ => rnn::gru(&mut g, v[0], v[1], v[2], Some(v[3]), v[4]).unwrap(),
                };
                assert_eq!(g.value(y).len(), batch * time * units * if cell == 1 { 2 } else { 1 });
                g.value(y).to_vec().iter().map(|v| v.to_bits()).collect()
            };
            let train = run(Graph::<f32>::new(), true);
            let infer = run(Graph::<f32>::no_grad(), false);
            assert!(train == infer, "cell {cell}, batch {batch}");
        }
    }
    nn_tensor::set_num_threads(0);
}

#[test]
fn lstm_last_is_the_last_step_of_lstm_with_the_same_gradients() {
    // Three chunks (150 samples) on 2 threads, f32: values and every gradient bit for
    // bit against slicing the last step out of the whole-sequence op.
    let (batch, time, feats, units) = (150, 4, 3, 24);
    nn_tensor::set_num_threads(2);
    let f32s = |t: Tensor<f64>| Tensor::<f32>::from_vec(t.shape(), t.to_vec().iter().map(|&v| v as f32).collect());
    let run = |last_op: bool| -> (Vec<u32>, Vec<Vec<u32>>) {
        let mut g = Graph::<f32>::new();
        let x = g.param("x", f32s(uniform(&[batch, time, feats], -1.0, 1.0, 1)));
        let w = g.param("w", f32s(uniform(&[feats, 4 * units], -0.4, 0.4, 2)));
        let u = g.param("u", f32s(uniform(&[units, 4 * units], -0.4, 0.4, 3)));
        let b = g.param("b", f32s(uniform(&[4 * units], -0.3, 0.3, 4)));
        let h0 = g.param("h0", f32s(uniform(&[batch, units], -0.5, 0.5, 5)));
        let c0 = g.param("c0", f32s(uniform(&[batch, units], -0.5, 0.5, 6)));
        let y = if last_op {
            rnn::lstm_last(&mut g, x, w, u, Some(b), h0, c0).unwrap()
        } else {
            let seq = rnn::lstm(&mut g, x, w, u, Some(b), h0, c0).unwrap();
            let last = g.try_slice(seq, 1, time - 1, time).unwrap();
            g.try_reshape(last, &[batch, 2 * units]).unwrap()
        };
        assert_eq!(g.value(y).shape(), &[batch, 2 * units]);
        let value = g.value(y).to_vec().iter().map(|v| v.to_bits()).collect();
        let grads = g.backward_with_seed(y, f32s(uniform(&[batch, 2 * units], -1.0, 1.0, 7))).unwrap();
        let grads = [x, w, u, b, h0, c0]
            .iter()
            .map(|&v| grads.wrt(v).unwrap().to_vec().iter().map(|g| g.to_bits()).collect())
            .collect();
        (value, grads)
    };
    let (sliced, last) = (run(false), run(true));
    assert!(sliced.0 == last.0, "values");
    for (k, (a, b)) in sliced.1.iter().zip(&last.1).enumerate() {
        assert!(a == b, "gradient {k}");
    }
    nn_tensor::set_num_threads(0);
    // No steps: no last step to give.
    let mut g = Graph::<f64>::no_grad();
    let v: Vec<Var> = [vec![2, 0, 3], vec![3, 8], vec![2, 8], vec![8], vec![2, 2], vec![2, 2]]
        .iter()
        .map(|s| g.variable(Tensor::zeros(s)))
        .collect();
    assert!(rnn::lstm_last(&mut g, v[0], v[1], v[2], Some(v[3]), v[4], v[5]).is_err());
}
