//! 02-autograd: reverse-mode automatic differentiation on a `Graph` tape. Builds a
//! small expression and checks its gradient against the formula, shows gradients
//! accumulating over a reused value, runs backward through a two-layer network with
//! named parameters, and checks every one of its gradients against central finite
//! differences in f64 (by hand for one weight, then with `gradcheck` for all).
//!
//! Run: `cargo run --release -p nn --example 02-autograd`

use nn::autograd::{gradcheck, AutogradError, Graph, Var};
use nn::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // --- 1. An expression and its gradient -----------------------------------------
    // y = Σ (x² + 3x), so ∂y/∂x = 2x + 3.
    let mut g = Graph::<f64>::new();
    let x = g.variable(Tensor::from_vec(&[3], vec![-1.0, 0.5, 2.0])); // a leaf we want ∂/∂ of
    let x2 = g.mul(x, x);
    let three_x = g.mul_scalar(x, 3.0);
    let s = g.add(x2, three_x);
    let y = g.sum(s);
    println!("y = {}", g.value(y).item()); // (1 − 3) + (0.25 + 1.5) + (4 + 6) = 9.75
    let grads = g.backward(y)?;
    let dx = grads.wrt(x).expect("x is a variable");
    println!("∂y/∂x = {}  (2x + 3 = [1, 4, 7])", dx.array());
    assert_eq!(g.value(y).item(), 9.75);
    assert_eq!(dx.to_vec(), [1.0, 4.0, 7.0]);

    // --- 2. A value used twice receives both gradients ----------------------------
    // z = a·b + a, so ∂z/∂a = b + 1 and ∂z/∂b = a.
    let mut g = Graph::<f64>::new();
    let a = g.variable(Tensor::scalar(2.0));
    let b = g.variable(Tensor::scalar(5.0));
    let ab = g.mul(a, b);
    let z = g.add(ab, a);
    let grads = g.backward(z)?;
    assert_eq!((grads.wrt(a).unwrap().item(), grads.wrt(b).unwrap().item()), (6.0, 2.0));
    println!("z = a·b + a at (2, 5): ∂z/∂a = 6, ∂z/∂b = 2");

    // --- 3. A two-layer network with named parameters ------------------------------
    // Parameters live outside the graph; `param` binds one for this step under a
    // name, and backward reports gradients by those names, in binding order.
    let mut rng = seeded_rng(3);
    let inputs = Tensor::<f64>::random_normal(&[5, 4], 0.0, 1.0, &mut rng)?; // 5 samples, 4 features
    let labels = [0usize, 2, 1, 2, 0];
    let params: Vec<(&str, Tensor<f64>)> = vec![
        ("hidden.kernel", Tensor::random_normal(&[4, 6], 0.0, 0.5, &mut rng)?),
        ("hidden.bias", Tensor::random_normal(&[6], 0.0, 0.1, &mut rng)?),
        ("out.kernel", Tensor::random_normal(&[6, 3], 0.0, 0.5, &mut rng)?),
        ("out.bias", Tensor::random_normal(&[3], 0.0, 0.1, &mut rng)?),
    ];
    // loss = cross_entropy(tanh(x·W1 + b1)·W2 + b2, labels), the mean over the batch.
    let network = |g: &mut Graph<f64>, x: Var, p: &[Var]| -> Result<Var, AutogradError> {
        let pre = g.try_linear(x, p[0], Some(p[1]))?;
        let h = g.try_tanh(pre)?;
        let logits = g.try_linear(h, p[2], Some(p[3]))?;
        g.try_cross_entropy(logits, &labels)
    };

    let mut g = Graph::<f64>::new();
    let xv = g.input(&inputs); // data: no gradient
    let pv: Vec<Var> = params.iter().map(|(name, value)| g.param(name, value)).collect();
    let loss = network(&mut g, xv, &pv)?;
    let loss_value = g.value(loss).item();
    let grads = g.backward(loss)?;
    println!("\nnetwork loss {loss_value:.6} (ln 3 = {:.6} would be a uniform guess)", 3f64.ln());
    for (name, grad) in grads.iter() {
        println!("  ∂loss/∂{name:<14} {:?}  largest |entry| {:.3e}", grad.shape(), grad.abs().max());
    }
    assert_eq!(grads.names().collect::<Vec<_>>(), ["hidden.kernel", "hidden.bias", "out.kernel", "out.bias"]);

    // --- 4. One gradient entry by hand: a central finite difference ------------------
    // Evaluate the loss with W1[0, 0] moved by ±h on graphs that record nothing.
    let loss_with = |w00: f64| -> Result<f64, AutogradError> {
        let mut p: Vec<Tensor<f64>> = params.iter().map(|(_, v)| v.clone()).collect();
        p[0].array_mut()[[0, 0]] = w00;
        let mut g = Graph::<f64>::no_grad(); // values only, as under torch.no_grad()
        let xv = g.input(&inputs);
        let pv: Vec<Var> = p.iter().map(|t| g.constant(t)).collect();
        let l = network(&mut g, xv, &pv)?;
        Ok(g.value(l).item())
    };
    let w00 = params[0].1.array()[[0, 0]];
    let h = 1e-5;
    let numeric = (loss_with(w00 + h)? - loss_with(w00 - h)?) / (2.0 * h);
    let analytic = grads.get("hidden.kernel").unwrap().array()[[0, 0]];
    println!("\n∂loss/∂W1[0,0]: backward {analytic:.12}, finite difference {numeric:.12}");
    assert!((analytic - numeric).abs() < 1e-8, "{analytic} vs {numeric}");

    // --- 5. gradcheck: every entry of every input at once ---------------------------
    // `gradcheck` makes each tensor a variable, runs backward once, then compares each
    // of the 5·4 + 4·6 + 6 + 6·3 + 3 = 71 gradient entries with a fourth-order central
    // difference in f64.
    let mut all = vec![inputs.clone()];
    all.extend(params.iter().map(|(_, v)| v.clone()));
    let report = gradcheck(&all, |g, v| network(g, v[0], &v[1..]))?;
    println!("{report}");
    assert_eq!(report.checked, 71);
    assert!(report.passes(1e-7), "gradients disagree with finite differences");
    println!("\nall gradients agree with finite differences");
    Ok(())
}
