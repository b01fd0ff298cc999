//! Property tests: clipping, Adam's invariance to gradient scale, schedule bounds,
//! checkpoint round trips, and bad shapes never panicking.

use nn_optim::{
    checkpoint_from_bytes, checkpoint_to_bytes, clip_grad_norm, global_norm, Adam, AdamConfig, LrSchedule, OptimError,
    Optimizer, OptimizerConfig, ParamMut, ParamRules, RmsProp, RmsPropConfig, SgdConfig,
};
use nn_tensor::Tensor;
use proptest::prelude::*;

fn vecs(max_len: usize, range: f64) -> impl Strategy<Value = Vec<Vec<f64>>> {
    prop::collection::vec(prop::collection::vec(-range..range, 1..=max_len), 1..=3)
}

fn tensors(v: &[Vec<f64>]) -> Vec<Tensor<f64>> {
    v.iter().map(|x| Tensor::from_vec(&[x.len()], x.clone())).collect()
}

fn params<'a>(
    names: &'a [String],
    values: &'a mut [Tensor<f64>],
    grads: &'a mut [Tensor<f64>],
) -> Vec<ParamMut<'a, f64>> {
    names.iter().zip(values.iter_mut().zip(grads.iter_mut())).map(|(n, (v, g))| ParamMut::new(n, v, g)).collect()
}

proptest! {
    /// The returned norm is √Σg²; afterwards the norm is at most max_norm, every
    /// gradient is scaled by the same factor, and small gradients are left alone.
    #[test]
    fn clip_grad_norm_scales_uniformly_to_at_most_max_norm(g in vecs(5, 100.0), max_norm in 1e-3..10.0f64) {
        let names: Vec<String> = (0..g.len()).map(|i| format!("p{i}")).collect();
        let mut values = tensors(&g);
        let mut grads = tensors(&g);
        let direct = g.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
        let mut ps = params(&names, &mut values, &mut grads);
        let n = clip_grad_norm(&mut ps, max_norm).unwrap();
        prop_assert!((n - direct).abs() <= 1e-12 * direct.max(1.0));
        prop_assert!(global_norm(&ps) <= max_norm * (1.0 + 1e-12));
        // PyTorch: c = max_norm / (n + 1e-6), applied when c < 1.
        let c = max_norm / (n + 1e-6);
        let factor = if c < 1.0 { c } else { 1.0 };
        for (before, after) in g.iter().flatten().zip(grads.iter().flat_map(|t| t.to_vec())) {
            prop_assert_eq!(after, before * factor);
        }
    }

    /// Adam is invariant to rescaling the gradients (Kingma & Ba 2015, §2.1) when ε
    /// is negligible: m̂/√v̂ does not change when every g is multiplied by c > 0.
    #[test]
    fn adam_is_invariant_to_gradient_scale(
        g in prop::collection::vec(prop::collection::vec(-10.0..10.0f64, 3), 1..8),
        log_c in -3.0..3.0f64,
        amsgrad in any::<bool>(),
    ) {
        let c = 10f64.powf(log_c);
        let config = AdamConfig::new(0.05).with_epsilon(1e-30).with_amsgrad(amsgrad);
        let run = |scale: f64| {
            let mut opt = Adam::<f64>::new(config).unwrap();
            let mut w = Tensor::<f64>::from_vec(&[3], vec![0.3, -1.0, 2.0]);
            for step in &g {
                let mut grad = Tensor::<f64>::from_vec(&[3], step.iter().map(|x| x * scale).collect());
                opt.step(&mut [ParamMut::new("w", &mut w, &mut grad)]).unwrap();
            }
            w.to_vec()
        };
        for (a, b) in run(1.0).iter().zip(run(c)) {
            prop_assert!((a - b).abs() <= 1e-9, "{} vs {}", a, b);
        }
    }

    /// Centered RMSprop stays finite for finite gradients, including constant ones
    /// where s − ḡ² is a rounding error away from 0.
    #[test]
    fn centered_rmsprop_stays_finite(g in -1e3..1e3f64, steps in 1usize..50) {
        let mut opt = RmsProp::<f32>::new(RmsPropConfig::new(0.01).with_centered(true).with_momentum(0.9)).unwrap();
        let mut w = Tensor::<f32>::zeros(&[4]);
        for _ in 0..steps {
            let mut grad = Tensor::<f32>::full(&[4], g as f32);
            opt.step(&mut [ParamMut::new("w", &mut w, &mut grad)]).unwrap();
        }
        prop_assert!(w.to_vec().iter().all(|x| x.is_finite()));
    }

    /// Warm-up then cosine decay stays between its end points, rises during warm-up
    /// and falls afterwards.
    #[test]
    fn cosine_with_warmup_is_bounded_and_unimodal(
        initial in 0.0..1e-2f64, peak in 1e-2..1.0f64, warmup in 1u64..50, decay in 1u64..500, alpha in 0.0..1.0f64,
    ) {
        let s = LrSchedule::cosine_decay_with_warmup(initial, warmup, peak, decay, alpha);
        s.validate().unwrap();
        let lrs: Vec<f64> = (0..warmup + decay + 20).map(|k| s.learning_rate(k)).collect();
        let (lo, hi) = (initial.min(alpha * peak), peak);
        for (k, w) in lrs.windows(2).enumerate() {
            prop_assert!(w[0] >= lo * (1.0 - 1e-12) && w[0] <= hi * (1.0 + 1e-12));
            if (k as u64) < warmup {
                prop_assert!(w[1] >= w[0]);
            } else {
                prop_assert!(w[1] <= w[0] * (1.0 + 1e-12));
            }
        }
        prop_assert!((lrs[(warmup + decay) as usize] - alpha * peak).abs() <= 1e-12);
    }

    /// A staircase never decays faster than the smooth exponential, and both agree at
    /// multiples of decay_steps.
    #[test]
    fn staircase_bounds_smooth_decay(initial in 1e-4..1.0f64, rate in 0.01..1.0f64, every in 1u64..100, step in 0u64..10_000) {
        let smooth = LrSchedule::exponential_decay(initial, every, rate, false);
        let stairs = LrSchedule::exponential_decay(initial, every, rate, true);
        prop_assert!(stairs.learning_rate(step) >= smooth.learning_rate(step) * (1.0 - 1e-12));
        let k = step / every * every;
        prop_assert!((stairs.learning_rate(k) - smooth.learning_rate(k)).abs() <= 1e-12 * initial);
    }

    /// Any optimizer state written to bytes reads back bit for bit.
    #[test]
    fn checkpoint_bytes_round_trip(g in vecs(6, 10.0), steps in 1usize..5, lr in 1e-6..1.0f64) {
        for config in [
            OptimizerConfig::Adam(AdamConfig::new(lr).with_amsgrad(true)),
            OptimizerConfig::Sgd(SgdConfig::new(lr).with_momentum(0.9)),
        ] {
            let mut opt = config.build::<f32>(ParamRules::new()).unwrap();
            let names: Vec<String> = (0..g.len()).map(|i| format!("layers.{i}.kernel")).collect();
            let mut values: Vec<Tensor<f32>> = tensors(&g).iter().map(|t| t.cast()).collect();
            for _ in 0..steps {
                let mut grads: Vec<Tensor<f32>> = values.iter().map(|v| v.map(|x| x * 0.5 + 0.1)).collect();
                let mut ps: Vec<ParamMut<f32>> = names
                    .iter()
                    .zip(values.iter_mut().zip(grads.iter_mut()))
                    .map(|(n, (v, g))| ParamMut::new(n, v, g))
                    .collect();
                opt.step(&mut ps).unwrap();
            }
            let back = checkpoint_from_bytes::<f32>(&checkpoint_to_bytes(opt.as_ref(), None, None).unwrap()).unwrap();
            let a = opt.state();
            prop_assert_eq!(back.state.learning_rate.to_bits(), a.learning_rate.to_bits());
            prop_assert_eq!(back.state.iterations, a.iterations);
            for (name, pa) in &a.params {
                for ((sa, ta), (sb, tb)) in pa.slots.iter().zip(&back.state.params[name].slots) {
                    prop_assert_eq!(sa, sb);
                    let bits = |t: &Tensor<f32>| t.to_vec().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    prop_assert_eq!(bits(ta), bits(tb));
                }
            }
        }
    }

    /// A gradient of another shape is an error naming both shapes, never a panic, and
    /// changes nothing.
    #[test]
    fn wrong_gradient_shapes_are_errors(p in prop::collection::vec(1usize..4, 0..4), q in prop::collection::vec(1usize..4, 0..4)) {
        prop_assume!(p != q);
        for config in [
            OptimizerConfig::Sgd(SgdConfig::new(0.1).with_momentum(0.5)),
            OptimizerConfig::Adam(AdamConfig::new(0.1)),
            OptimizerConfig::RmsProp(RmsPropConfig::new(0.1).with_centered(true)),
        ] {
            let mut opt = config.build::<f64>(ParamRules::new()).unwrap();
            let mut w = Tensor::<f64>::ones(&p);
            let mut g = Tensor::<f64>::ones(&q);
            let err = opt.step(&mut [ParamMut::new("w", &mut w, &mut g)]).unwrap_err();
            let is_shape_error = matches!(err, OptimError::GradShape { ref param, ref grad, .. } if param == &p && grad == &q);
            prop_assert!(is_shape_error);
            prop_assert_eq!(w.to_vec(), vec![1.0; w.len()]);
            prop_assert_eq!(opt.iterations(), 0);
        }
    }
}
