//! A tiny GPT (`ModelSpec::gpt`) learns a repeating token sequence: next-token
//! prediction with per-position sparse categorical cross-entropy from logits
//! (`[batch, context, vocab]` against `[batch, context]` targets) and Adam. `fit`
//! takes one class label per sample, so this is the library loop: forward, loss,
//! backward, `Optimizer::step`.

use std::sync::Arc;

use nn_autograd::Graph;
use nn_layers::loss::{Loss, LossTargets};
use nn_layers::{ForwardCtx, Mode, Model, ModelSpec, Tensor};
use nn_optim::{Adam, AdamConfig, Optimizer, ParamMut};
use nn_tensor::random::seeded_rng;

/// One Adam step on `(ids, targets)`; returns the loss before the step.
fn step(model: &mut Model<f32>, opt: &mut Adam<f32>, ids: &Tensor<f32>, targets: &Tensor<f32>, seed: u64) -> f32 {
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 };
    let mut g = Graph::<f32>::new();
    let x = g.input(ids.clone());
    let mut rng = seeded_rng(seed);
    let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
    let logits = model.forward_logits(&mut g, x, &mut ctx).unwrap();
    let l = loss.compute(&mut g, logits, &LossTargets::Values(targets)).unwrap();
    let value = g.value(l).item();
    let mut grads = g.backward(l).unwrap().into_vec();
    drop(g);
    let mut bound: Vec<ParamMut<'_, f32>> = Vec::new();
    for (p, (name, grad)) in model.parameters_mut().iter_mut().filter(|p| p.trainable).zip(grads.iter_mut()) {
        assert_eq!(&p.name, name, "gradients come in parameter order");
        bound.push(ParamMut::new(&p.name, Arc::make_mut(&mut p.value), grad));
    }
    opt.step(&mut bound).unwrap();
    value
}

#[test]
fn tiny_gpt_overfits_a_repeating_sequence() {
    // The sequence 0 1 2 3 4 0 1 2 3 4 …; every window of 8 tokens (5 distinct
    // offsets), the targets the same windows shifted by one.
    let (vocab, context) = (5, 8);
    let token = |k: usize| (k % vocab) as f32;
    let mut ids = Vec::new();
    let mut next = Vec::new();
    for start in 0..vocab {
        ids.extend((start..start + context).map(token));
        next.extend((start + 1..start + context + 1).map(token));
    }
    let ids = Tensor::from_vec(&[vocab, context], ids);
    let targets = Tensor::from_vec(&[vocab, context], next);
    let mut model = Model::<f32>::new(ModelSpec::gpt(vocab, context, 16, 2, 1, 0.0).unwrap(), 0).unwrap();
    let mut opt = Adam::<f32>::new(AdamConfig::new(0.01)).unwrap();
    let first = step(&mut model, &mut opt, &ids, &targets, 0);
    // At the start about chance level, ln 5 = 1.609 (random logits give a bit more).
    assert!(first > 1.2, "initial loss {first}");
    let mut last = first;
    for s in 1..80 {
        last = step(&mut model, &mut opt, &ids, &targets, s);
    }
    assert!(last < 0.05, "loss after 80 Adam steps: {last} (from {first})");
}
