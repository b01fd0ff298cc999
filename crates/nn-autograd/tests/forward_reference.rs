//! Forward values against slow, obviously correct references (nested loops and the
//! textbook formulas), over random shapes and values. The gradchecks prove backward
//! matches forward; these prove forward computes the intended function.

use nn_autograd::{Graph, Padding, Tensor};
use nn_tensor::random::seeded_rng;
use proptest::prelude::*;

fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor<f64> {
    Tensor::random_uniform(shape, lo, hi, &mut seeded_rng(seed)).unwrap()
}

/// `(pad_before, out)` along one axis: TensorFlow's rule for 'same' (out = ceil(in/s),
/// total padding max((out − 1)·s + k − in, 0), the smaller half before), or 'valid'.
fn axis_geometry(input: usize, k: usize, s: usize, same: bool) -> (usize, usize) {
    if same {
        let out = input.div_ceil(s);
        let total = ((out - 1) * s + k).saturating_sub(input);
        (total / 2, out)
    } else {
        (0, (input - k) / s + 1)
    }
}

fn close(a: &Tensor<f64>, b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.to_vec().iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv2d_matches_direct_convolution(
        n in 1usize..3, h in 1usize..8, w in 1usize..8, c in 1usize..4, f in 1usize..4,
        kh in 1usize..4, kw in 1usize..4, sh in 1usize..4, sw in 1usize..4, same in any::<bool>(), seed in any::<u64>(),
    ) {
        prop_assume!(same || (kh <= h && kw <= w));
        let x = uniform(&[n, h, w, c], -2.0, 2.0, seed);
        let k = uniform(&[kh, kw, c, f], -1.0, 1.0, seed ^ 1);
        let b = uniform(&[f], -1.0, 1.0, seed ^ 2);
        let (pt, oh) = axis_geometry(h, kh, sh, same);
        let (pl, ow) = axis_geometry(w, kw, sw, same);
        let mut want = vec![0.0; n * oh * ow * f];
        for bi in 0..n {
            for i in 0..oh {
                for j in 0..ow {
                    for fi in 0..f {
                        let mut acc = b.get(&[fi]).unwrap();
                        for a in 0..kh {
                            for e in 0..kw {
                                let (r, q) = ((i * sh + a) as isize - pt as isize, (j * sw + e) as isize - pl as isize);
                                if r < 0 || q < 0 || r as usize >= h || q as usize >= w {
                                    continue;
                                }
                                for ci in 0..c {
                                    acc += x.get(&[bi, r as usize, q as usize, ci]).unwrap() * k.get(&[a, e, ci, fi]).unwrap();
                                }
                            }
                        }
                        want[((bi * oh + i) * ow + j) * f + fi] = acc;
                    }
                }
            }
        }
        let mut g = Graph::<f64>::no_grad();
        let (xv, kv, bv) = (g.input(x), g.input(k), g.input(b));
        let y = g.conv2d(xv, kv, Some(bv), (sh, sw), if same { Padding::Same } else { Padding::Valid });
        prop_assert_eq!(g.shape(y), &[n, oh, ow, f]);
        prop_assert!(close(g.value(y), &want, 1e-12));
    }

    #[test]
    fn pools_match_direct_loops(
        n in 1usize..3, h in 1usize..8, w in 1usize..8, c in 1usize..4,
        ph in 1usize..4, pw in 1usize..4, sh in 1usize..4, sw in 1usize..4, same in any::<bool>(), seed in any::<u64>(),
    ) {
        prop_assume!(same || (ph <= h && pw <= w));
        let x = uniform(&[n, h, w, c], -2.0, 2.0, seed);
        let (pt, oh) = axis_geometry(h, ph, sh, same);
        let (pl, ow) = axis_geometry(w, pw, sw, same);
        let (mut want_max, mut want_avg) = (Vec::new(), Vec::new());
        for bi in 0..n {
            for i in 0..oh {
                for j in 0..ow {
                    for ci in 0..c {
                        let mut vals = Vec::new();
                        for a in 0..ph {
                            for e in 0..pw {
                                let (r, q) = ((i * sh + a) as isize - pt as isize, (j * sw + e) as isize - pl as isize);
                                if r >= 0 && q >= 0 && (r as usize) < h && (q as usize) < w {
                                    vals.push(x.get(&[bi, r as usize, q as usize, ci]).unwrap());
                                }
                            }
                        }
                        want_max.push(vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
                        want_avg.push(vals.iter().sum::<f64>() / vals.len() as f64);
                    }
                }
            }
        }
        let padding = if same { Padding::Same } else { Padding::Valid };
        let mut g = Graph::<f64>::no_grad();
        let xv = g.input(x);
        let m = g.max_pool2d(xv, (ph, pw), (sh, sw), padding);
        let a = g.avg_pool2d(xv, (ph, pw), (sh, sw), padding);
        prop_assert_eq!(g.shape(m), &[n, oh, ow, c]);
        prop_assert_eq!(g.value(m).to_vec(), want_max);
        prop_assert!(close(g.value(a), &want_avg, 1e-14));
    }

    #[test]
    fn linear_and_matmul_match_naive_products(
        m in 1usize..6, k in 1usize..6, n in 1usize..6, ta in any::<bool>(), tb in any::<bool>(), seed in any::<u64>(),
    ) {
        let x = uniform(&[m, k], -2.0, 2.0, seed);
        let w = uniform(&[k, n], -2.0, 2.0, seed ^ 1);
        let b = uniform(&[n], -2.0, 2.0, seed ^ 2);
        let mut want = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = b.get(&[j]).unwrap() + (0..k).map(|p| x.get(&[i, p]).unwrap() * w.get(&[p, j]).unwrap()).sum::<f64>();
            }
        }
        let mut g = Graph::<f64>::no_grad();
        let (xv, wv, bv) = (g.input(&x), g.input(&w), g.input(&b));
        let y = g.linear(xv, wv, Some(bv));
        prop_assert!(close(g.value(y), &want, 1e-13));
        // The same product with operands stored transposed.
        let xs = g.input(if ta { x.t().to_contiguous() } else { x.clone() });
        let ws = g.input(if tb { w.t().to_contiguous() } else { w.clone() });
        let p = g.matmul_t(xs, ws, ta, tb);
        let pb = g.add(p, bv);
        prop_assert!(close(g.value(pb), &want, 1e-13));
    }

    #[test]
    fn losses_match_textbook_formulas(batch in 1usize..5, classes in 1usize..5, t in prop::collection::vec(0usize..5, 5), seed in any::<u64>()) {
        let logits = uniform(&[batch, classes], -5.0, 5.0, seed);
        let targets: Vec<usize> = t[..batch].iter().map(|&v| v % classes).collect();
        // −ln(e^{x_t} / Σ e^{x_j}), averaged over the batch.
        let want: f64 = (0..batch).map(|r| {
            let row: Vec<f64> = (0..classes).map(|j| logits.get(&[r, j]).unwrap()).collect();
            -(row[targets[r]].exp() / row.iter().map(|v| v.exp()).sum::<f64>()).ln()
        }).sum::<f64>() / batch as f64;
        let y = uniform(&[batch, classes], 0.0, 1.0, seed ^ 3);
        // −y ln σ(x) − (1 − y) ln(1 − σ(x)), averaged over all elements.
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let want_bce: f64 = logits.to_vec().iter().zip(y.to_vec()).map(|(&x, y)| -y * sig(x).ln() - (1.0 - y) * (1.0 - sig(x)).ln()).sum::<f64>() / (batch * classes) as f64;
        let mut g = Graph::<f64>::no_grad();
        let (lv, yv) = (g.input(&logits), g.input(&y));
        let ce = g.cross_entropy(lv, &targets);
        prop_assert!((g.value(ce).item() - want).abs() <= 1e-12 * (1.0 + want.abs()));
        let bce = g.binary_cross_entropy_with_logits(lv, yv);
        prop_assert!((g.value(bce).item() - want_bce).abs() <= 1e-12 * (1.0 + want_bce.abs()));
        // softplus = ln(1 + e^x); elu and leaky relu by their definitions.
        let sp = g.softplus(lv);
        let want_sp: Vec<f64> = logits.to_vec().iter().map(|v| (1.0 + v.exp()).ln()).collect();
        prop_assert!(close(g.value(sp), &want_sp, 1e-14));
        let e = g.elu(lv, 0.7);
        let want_e: Vec<f64> = logits.to_vec().iter().map(|&v| if v > 0.0 { v } else { 0.7 * (v.exp() - 1.0) }).collect();
        prop_assert!(close(g.value(e), &want_e, 1e-14));
        let l = g.leaky_relu(lv, 0.2);
        let want_l: Vec<f64> = logits.to_vec().iter().map(|&v| if v > 0.0 { v } else { 0.2 * v }).collect();
        prop_assert_eq!(g.value(l).to_vec(), want_l);
    }
}
