//! The ONNX importer on arbitrary bytes: it must return `Ok` or `Err`, never panic,
//! abort or allocate without bound (a tensor's claimed shape is checked against the
//! bytes it holds before anything is allocated); an imported model must run a
//! forward pass of the shapes it declares.
//!
//! Seeds: `fuzz/seeds/onnx_import/` (files written by `nn-cli export` and a
//! PyTorch-style NCHW graph); copy them into `fuzz/corpus/onnx_import/` first.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nn_tensor::Tensor;

/// Bounds that keep one fuzz input cheap: parameters, and elements of one sample at
/// any layer (a forward pass runs on a batch of one).
const MAX_PARAMS: usize = 1 << 16;
const MAX_SAMPLE: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Ok(imported) = nn_onnx::import(data) else { return };
    let model = &imported.model;
    let (trainable, frozen) = model.num_parameters();
    if trainable + frozen > MAX_PARAMS {
        return;
    }
    let big = |s: &[usize]| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none_or(|n| n > MAX_SAMPLE);
    if model.layers().iter().any(|l| big(l.output_shape())) || model.inputs().iter().any(|i| big(&i.shape)) {
        return;
    }
    if model.inputs().len() != 1 {
        return;
    }
    let mut shape = vec![1];
    shape.extend_from_slice(model.input_shape());
    let out = model.predict(&Tensor::<f32>::zeros(&shape)).expect("an imported model runs on its declared input");
    assert_eq!(&out.shape()[1..], model.output_shape());
});
