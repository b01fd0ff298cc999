//! Same inputs, same gradients, bit for bit, at any thread count: a small CNN step
//! (conv2d + bias → relu → max-pool → flatten → linear → cross-entropy, plus an
//! average pool and a second convolution whose input gradient is needed) with a batch
//! large enough that the convolution and pooling kernels split it into several
//! chunks, the last one partial.
//!
//! Its own test binary, because it changes the process-wide thread count.

use nn_autograd::{Graph, Padding, Tensor};
use nn_tensor::random::seeded_rng;

fn step() -> Vec<(String, Vec<f32>)> {
    let mut rng = seeded_rng(7);
    let mut uniform = |shape: &[usize], a: f32| Tensor::<f32>::random_uniform(shape, -a, a, &mut rng).unwrap();
    let x = uniform(&[45, 12, 12, 2], 1.0);
    let (k1, b1) = (uniform(&[3, 3, 2, 8], 0.4), uniform(&[8], 0.1));
    let (k2, b2) = (uniform(&[2, 2, 8, 6], 0.4), uniform(&[6], 0.1));
    let (w, b) = (uniform(&[5 * 5 * 6, 10], 0.2), uniform(&[10], 0.1));
    let targets: Vec<usize> = (0..45).map(|i| (i * 3) % 10).collect();
    let mut g = Graph::new();
    let xv = g.input(x);
    let p: Vec<_> = [("k1", &k1), ("b1", &b1), ("k2", &k2), ("b2", &b2), ("w", &w), ("b", &b)]
        .iter()
        .map(|(n, t)| g.param(n, *t))
        .collect();
    let h = g.conv2d(xv, p[0], Some(p[1]), (1, 1), Padding::Same); // [45, 12, 12, 8]
    let h = g.relu(h);
    let h = g.max_pool2d(h, (2, 2), (2, 2), Padding::Valid); // [45, 6, 6, 8]
    let h = g.conv2d(h, p[2], Some(p[3]), (1, 1), Padding::Valid); // [45, 5, 5, 6]
    let h = g.tanh(h);
    let h = g.avg_pool2d(h, (3, 3), (1, 1), Padding::Same); // [45, 5, 5, 6]
    let h = g.flatten(h);
    let logits = g.linear(h, p[4], Some(p[5]));
    let loss = g.cross_entropy(logits, &targets);
    let grads = g.backward(loss).unwrap();
    let mut out = vec![("loss".to_string(), vec![g.value(loss).item()])];
    out.extend(grads.into_iter().map(|(n, t)| (n, t.to_vec())));
    out
}

#[test]
fn gradients_are_bit_identical_for_any_thread_count() {
    nn_tensor::set_num_threads(1);
    let one = step();
    for threads in [2, 3, 4] {
        nn_tensor::set_num_threads(threads);
        let other = step();
        for ((name, a), (_, b)) in one.iter().zip(&other) {
            // Compare bits, so that -0.0 vs 0.0 or differing NaN payloads would show.
            let (a, b): (Vec<u32>, Vec<u32>) =
                (a.iter().map(|v| v.to_bits()).collect(), b.iter().map(|v| v.to_bits()).collect());
            assert_eq!(a, b, "{name}: {threads} threads differ from 1");
        }
    }
    nn_tensor::set_num_threads(0);
    // The step did real work: every gradient has a non-zero entry.
    assert!(one.iter().all(|(_, v)| v.iter().any(|&x| x != 0.0)));
}
