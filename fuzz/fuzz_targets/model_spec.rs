//! The model spec parser (format versions 1 and 2) and the model builder on arbitrary
//! text: each must return `Ok` or `Err`, never panic, abort or allocate without
//! bound; an accepted spec must round-trip through JSON and its model must run a
//! forward pass of the shapes it declared.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nn_layers::{ForwardCtx, Graph, Mode, Model, ModelSpec, Tensor};
use nn_tensor::random::seeded_rng;

/// Bounds that keep one fuzz input cheap: parameters, and elements of one sample
/// at any layer (a forward pass runs on a batch of one).
const MAX_PARAMS: usize = 1 << 16;
const MAX_SAMPLE: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(spec) = ModelSpec::from_json(text) else { return };
    // What the parser accepts, it writes back to an equal spec.
    let again = ModelSpec::from_json(&spec.to_json()).expect("a parsed spec re-parses");
    assert_eq!(again, spec);
    let Ok(model) = Model::<f32>::with_limit(spec, 0, MAX_PARAMS) else { return };
    let big = |s: &[usize]| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none_or(|n| n > MAX_SAMPLE);
    if model.layers().iter().any(|l| big(l.output_shape())) || model.inputs().iter().any(|i| big(&i.shape)) {
        return;
    }
    let mut g = Graph::<f32>::no_grad();
    let xs: Vec<_> = model
        .inputs()
        .iter()
        .map(|i| {
            let mut shape = vec![1];
            shape.extend_from_slice(&i.shape);
            g.input(Tensor::<f32>::zeros(&shape))
        })
        .collect();
    let mut rng = seeded_rng(0);
    // Zeros are valid for every layer (Embedding indices included).
    let outs = model
        .forward_all(&mut g, &xs, &mut ForwardCtx::new(Mode::Eval, &mut rng), false)
        .expect("a built model runs on inputs of its declared shapes");
    for (out, want) in outs.iter().zip(model.output_shapes()) {
        assert_eq!(&g.value(*out).shape()[1..], &want[..]);
    }
});
