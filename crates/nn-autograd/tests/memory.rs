//! Memory does not grow over training steps: 10,000 small SGD steps, each building a
//! graph, running backward and dropping everything, with the graph's live memory back
//! to zero after each step and the process heap back to the same byte count.
//!
//! This file is its own test binary with a single test, so the process-wide counters
//! and the counting allocator see no other test's graphs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use nn_autograd::{live_graph_bytes, live_graph_nodes, Graph, Tensor};
use nn_tensor::random::seeded_rng;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static HEAP: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers every call to `System` unchanged and only updates a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            HEAP.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            HEAP.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HEAP.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HEAP.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn ten_thousand_steps_free_everything() {
    nn_tensor::set_num_threads(1);
    let mut rng = seeded_rng(42);
    // A learnable toy problem: 3 classes by the sign pattern of two of 4 features.
    let x = Tensor::<f32>::random_uniform(&[16, 4], -1.0, 1.0, &mut rng).unwrap();
    let targets: Vec<usize> = (0..16)
        .map(|r| {
            let (a, b) = (x.get(&[r, 0]).unwrap(), x.get(&[r, 1]).unwrap());
            if a > 0.0 && b > 0.0 {
                0
            } else if a > 0.0 {
                1
            } else {
                2
            }
        })
        .collect();
    let mut params = vec![
        ("dense0.kernel", Tensor::<f32>::random_uniform(&[4, 8], -0.5, 0.5, &mut rng).unwrap()),
        ("dense0.bias", Tensor::<f32>::zeros(&[8])),
        ("dense1.kernel", Tensor::<f32>::random_uniform(&[8, 3], -0.5, 0.5, &mut rng).unwrap()),
        ("dense1.bias", Tensor::<f32>::zeros(&[3])),
    ];

    let step = |params: &mut Vec<(&str, Tensor<f32>)>, check: bool| -> f32 {
        let mut g = Graph::new();
        let xv = g.input(&x);
        let p: Vec<_> = params.iter().map(|(name, t)| g.param(name, t)).collect();
        let h = g.linear(xv, p[0], Some(p[1]));
        let h = g.relu(h);
        let logits = g.linear(h, p[2], Some(p[3]));
        let loss = g.cross_entropy(logits, &targets);
        let grads = g.backward(loss).unwrap();
        let value = g.value(loss).item();
        if check {
            // While the graph lives it holds its nodes' values and saved tensors.
            assert!(g.live_bytes() > 0 && live_graph_bytes() == g.live_bytes());
            assert_eq!(live_graph_nodes(), g.len());
        }
        drop(g);
        for ((name, t), (gname, grad)) in params.iter_mut().zip(grads) {
            assert_eq!(*name, gname);
            t.array_mut().zip_mut_with(grad.array(), |w, &d| *w -= 0.5 * d);
        }
        value
    };

    // Warm up (lazily created thread pools and caches), then take the baseline.
    let first_loss = step(&mut params, true);
    for _ in 0..9 {
        step(&mut params, false);
    }
    let baseline = HEAP.load(Ordering::Relaxed);
    let mut last_loss = first_loss;
    for i in 0..10_000 {
        last_loss = step(&mut params, i % 1000 == 0);
        assert_eq!(live_graph_bytes(), 0, "step {i}: graph bytes still held");
        assert_eq!(live_graph_nodes(), 0, "step {i}: graph nodes still alive");
        assert_eq!(HEAP.load(Ordering::Relaxed), baseline, "step {i}: heap grew");
    }
    // The steps did real work: the loss fell well below ln 3 ≈ 1.0986 (chance level).
    assert!(last_loss < 0.2 * first_loss, "loss {first_loss} → {last_loss}");
}
