//! Saving optimizer state mid-run and resuming from the file continues bit for bit as
//! the uninterrupted run; state that does not fit the parameters is a clear error.

use std::collections::HashMap;

use nn_optim::{
    bind, checkpoint_from_bytes, checkpoint_to_bytes, clip_grad_norm, load_checkpoint, save_checkpoint, AdagradConfig,
    AdamConfig, LrSchedule, OptimError, Optimizer, OptimizerConfig, OptimizerState, ParamMut, ParamRules,
    ParamSelector, ReduceLrOnPlateau, Regularizer, RmsPropConfig, SgdConfig,
};
use nn_tensor::{Element, Tensor};

type Params<T> = Vec<(String, Tensor<T>)>;

/// A small model's parameters: two Dense layers around a BatchNorm.
fn init<T: Element>() -> Params<T> {
    let p = |name: &str, shape: &[usize], start: f64| {
        let n: usize = shape.iter().product();
        let values: Vec<f64> = (0..n).map(|i| start + 0.37 * i as f64 - 0.11 * (i * i) as f64).collect();
        (name.to_string(), Tensor::<T>::from_f64_slice(shape, &values).unwrap())
    };
    vec![
        p("layers.0.kernel", &[3, 2], 0.5),
        p("layers.0.bias", &[2], -0.2),
        p("layers.1.gamma", &[2], 1.0),
        p("layers.1.beta", &[2], 0.0),
        p("layers.1.moving_mean", &[2], 0.3),
        p("layers.2.kernel", &[2, 1], -0.7),
    ]
}

/// Deterministic gradients that depend on the parameters and the step k:
/// g = 0.5·θ + 0.01·θ³ − 0.1·sin(0.7·k + i), i the element's index.
fn gradients<T: Element>(params: &Params<T>, k: usize) -> Params<T> {
    params
        .iter()
        .map(|(name, t)| {
            let g: Vec<f64> = t
                .to_vec()
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    let x = x.as_f64();
                    0.5 * x + 0.01 * x * x * x - 0.1 * (0.7 * k as f64 + i as f64).sin()
                })
                .collect();
            (name.clone(), Tensor::from_f64_slice(t.shape(), &g).unwrap())
        })
        .collect()
}

/// Rules exercised by the resumed run: a discriminative multiplier and a frozen layer.
fn rules() -> ParamRules {
    ParamRules::new()
        .lr_multiplier(ParamSelector::prefix("layers.2."), 0.5)
        .freeze(ParamSelector::exact("layers.1.beta"))
}

/// How the learning rate is driven in a run.
#[derive(Clone, Copy)]
enum Driver {
    /// A cosine schedule with warm-up, applied before every step.
    Schedule,
    /// Reduce-on-plateau, observing Σθ² after every step.
    Plateau,
}

struct Run<T: Element> {
    params: Params<T>,
    opt: Box<dyn Optimizer<T>>,
    schedule: Option<LrSchedule>,
    plateau: Option<ReduceLrOnPlateau>,
}

impl<T: Element> Run<T> {
    fn new(config: &OptimizerConfig, driver: Driver) -> Self {
        let (schedule, plateau) = match driver {
            Driver::Schedule => (Some(LrSchedule::cosine_decay_with_warmup(0.0, 3, 0.05, 20, 0.1)), None),
            // min_delta 10: only the first observation improves, so the rate halves
            // at every second observation after it (patience 2).
            Driver::Plateau => {
                (None, Some(ReduceLrOnPlateau::new().with_patience(2).with_min_delta(10.0).with_factor(0.5)))
            }
        };
        Run { params: init(), opt: config.build(rules()).unwrap(), schedule, plateau }
    }

    fn step(&mut self, k: usize) {
        let mut grads = gradients(&self.params, k);
        let mut bound =
            bind(self.params.iter_mut().map(|(n, t)| (n.as_str(), t)), grads.iter_mut().map(|(n, g)| (n.as_str(), g)))
                .unwrap();
        Regularizer::new(1e-3, 1e-2).apply(&mut bound).unwrap();
        clip_grad_norm(&mut bound, 1.0).unwrap();
        if let Some(s) = &self.schedule {
            s.apply(self.opt.as_mut()).unwrap();
        }
        self.opt.step(&mut bound).unwrap();
        if let Some(p) = &mut self.plateau {
            let metric: f64 = self.params.iter().flat_map(|(_, t)| t.to_vec()).map(|x| x.as_f64() * x.as_f64()).sum();
            p.apply(metric, self.opt.as_mut()).unwrap();
        }
    }

    fn shapes(&self) -> Vec<(&str, &[usize])> {
        self.params.iter().map(|(n, t)| (n.as_str(), t.shape())).collect()
    }
}

fn bits<T: Element>(t: &Tensor<T>) -> Vec<u64> {
    t.to_vec().iter().map(|x| x.as_f64().to_bits()).collect()
}

fn assert_same_state<T: Element>(a: &OptimizerState<T>, b: &OptimizerState<T>, what: &str) {
    assert_eq!(a.optimizer, b.optimizer, "{what}");
    assert_eq!(a.iterations, b.iterations, "{what}");
    assert_eq!(a.learning_rate.to_bits(), b.learning_rate.to_bits(), "{what}: learning rate");
    assert_eq!(a.params.keys().collect::<Vec<_>>(), b.params.keys().collect::<Vec<_>>(), "{what}");
    for (name, pa) in &a.params {
        let pb = &b.params[name];
        assert_eq!(pa.step, pb.step, "{what}: {name}");
        assert_eq!(pa.slots.len(), pb.slots.len(), "{what}: {name}");
        for ((sa, ta), (sb, tb)) in pa.slots.iter().zip(&pb.slots) {
            assert_eq!(sa, sb, "{what}: {name}");
            assert_eq!(bits(ta), bits(tb), "{what}: {name}/{sa}");
        }
    }
}

fn configs() -> Vec<OptimizerConfig> {
    vec![
        OptimizerConfig::Sgd(SgdConfig::new(0.05).with_momentum(0.9).with_nesterov(true).with_weight_decay(0.01)),
        OptimizerConfig::Sgd(SgdConfig::new(0.05).with_momentum(0.8).with_dampening(0.3)),
        OptimizerConfig::Adam(AdamConfig::new(0.05).with_amsgrad(true)),
        OptimizerConfig::AdamW(AdamConfig::adamw(0.05).with_weight_decay(0.05)),
        OptimizerConfig::RmsProp(RmsPropConfig::new(0.05).with_centered(true).with_momentum(0.5)),
        OptimizerConfig::Adagrad(AdagradConfig::new(0.05).with_weight_decay(0.01)),
    ]
}

const TOTAL: usize = 12;
const SAVE_AT: usize = 6;

fn resume_matches_uninterrupted<T: Element>(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    for config in configs() {
        let what = format!("{} {:?}", T::DTYPE, config);

        let mut straight = Run::<T>::new(&config, driver);
        for k in 0..TOTAL {
            straight.step(k);
        }

        let mut first = Run::<T>::new(&config, driver);
        for k in 0..SAVE_AT {
            first.step(k);
        }
        let path = dir.path().join(format!("{}.safetensors", config.name()));
        save_checkpoint(&path, first.opt.as_ref(), first.schedule.as_ref(), first.plateau.as_ref()).unwrap();
        let weights = first.params.clone(); // the model's weights are saved by the caller
        drop(first);

        let ckpt = load_checkpoint::<T>(&path).unwrap();
        assert_eq!(ckpt.config, config);
        let mut resumed = Run {
            params: weights,
            opt: ckpt.config.build(rules()).unwrap(),
            schedule: ckpt.schedule,
            plateau: ckpt.plateau,
        };
        let shapes = resumed.shapes().iter().map(|&(n, s)| (n.to_string(), s.to_vec())).collect::<Vec<_>>();
        let shapes: Vec<(&str, &[usize])> = shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
        resumed.opt.load_state(ckpt.state, &shapes).unwrap();
        assert_eq!(resumed.opt.iterations(), SAVE_AT as u64);
        for k in SAVE_AT..TOTAL {
            resumed.step(k);
        }

        for ((name, a), (_, b)) in straight.params.iter().zip(&resumed.params) {
            assert_eq!(bits(a), bits(b), "{what}: parameter {name}");
        }
        assert_same_state(straight.opt.state(), resumed.opt.state(), &what);
        assert_eq!(straight.plateau, resumed.plateau, "{what}");
        // The run really used what the checkpoint carried.
        assert!(!straight.opt.state().params.contains_key("layers.1.beta"), "frozen: no state");
        assert!(!straight.opt.state().params.contains_key("layers.1.moving_mean"), "frozen by default");
        if let Driver::Plateau = driver {
            // Observation k = 0 sets `best`; the rate halves at k = 2, 4 (before the save,
            // which happens with wait = 1), 6, 8 and 10.
            assert_eq!(straight.opt.learning_rate(), 0.05 / 32.0, "{what}: plateau reductions around the save");
        }
        // And the parameters moved from their initial values.
        assert_ne!(bits(&straight.params[0].1), bits(&init::<T>()[0].1));
    }
}

#[test]
fn resumed_run_equals_uninterrupted_run_bit_for_bit_f32_schedule() {
    resume_matches_uninterrupted::<f32>(Driver::Schedule);
}

#[test]
fn resumed_run_equals_uninterrupted_run_bit_for_bit_f64_schedule() {
    resume_matches_uninterrupted::<f64>(Driver::Schedule);
}

#[test]
fn resumed_run_equals_uninterrupted_run_bit_for_bit_f32_plateau() {
    resume_matches_uninterrupted::<f32>(Driver::Plateau);
}

#[test]
fn resumed_run_equals_uninterrupted_run_bit_for_bit_f64_plateau() {
    resume_matches_uninterrupted::<f64>(Driver::Plateau);
}

/// A run of 3 Adam steps with an awkward learning rate, as checkpoint bytes.
fn adam_bytes() -> (Vec<u8>, Run<f32>) {
    let config = OptimizerConfig::Adam(AdamConfig::new(0.1 + 0.2));
    let mut run = Run::<f32>::new(&config, Driver::Schedule);
    run.schedule = None;
    for k in 0..3 {
        run.step(k);
    }
    run.opt.set_learning_rate(1.0 / 3.0).unwrap();
    (checkpoint_to_bytes(run.opt.as_ref(), None, None).unwrap(), run)
}

#[test]
fn checkpoint_bytes_round_trip_exactly() {
    let (bytes, run) = adam_bytes();
    let ckpt = checkpoint_from_bytes::<f32>(&bytes).unwrap();
    assert_same_state(&ckpt.state, run.opt.state(), "round trip");
    assert_eq!(ckpt.state.learning_rate, 1.0 / 3.0);
    assert_eq!(ckpt.config, OptimizerConfig::Adam(AdamConfig::new(0.1 + 0.2)));
    assert_eq!((ckpt.schedule, ckpt.plateau), (None, None));
    let names: Vec<_> = ckpt.state.params["layers.0.kernel"].slots.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["exp_avg", "exp_avg_sq"]);
}

#[test]
fn state_that_does_not_fit_is_a_clear_error() {
    let (bytes, run) = adam_bytes();
    let state = checkpoint_from_bytes::<f32>(&bytes).unwrap().state;
    let shapes: Vec<(String, Vec<usize>)> = run.shapes().iter().map(|&(n, s)| (n.to_string(), s.to_vec())).collect();
    let view = |shapes: &[(String, Vec<usize>)]| -> Vec<(String, Vec<usize>)> { shapes.to_vec() };
    let load = |config: OptimizerConfig, shapes: &[(String, Vec<usize>)]| -> Result<(), OptimError> {
        let mut opt = config.build::<f32>(rules()).unwrap();
        let s: Vec<(&str, &[usize])> = shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
        opt.load_state(state.clone(), &s)
    };
    let adam = OptimizerConfig::Adam(AdamConfig::new(0.3));
    load(adam, &shapes).unwrap();

    // A parameter renamed.
    let mut renamed = view(&shapes);
    renamed[0].0 = "layers.0.weight".to_string();
    let err = load(adam, &renamed).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot load optimizer state: it holds parameter `layers.0.kernel`, which is not among the parameters given"
    );

    // A parameter reshaped.
    let mut reshaped = view(&shapes);
    reshaped[0].1 = vec![2, 3];
    let err = load(adam, &reshaped).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameter `layers.0.kernel`: optimizer state `exp_avg` has shape [3, 2], parameter has shape [2, 3]"
    );

    // A new trainable parameter without state (a frozen one is fine).
    let mut extra = view(&shapes);
    extra.push(("layers.3.kernel".to_string(), vec![4]));
    let err = load(adam, &extra).unwrap_err();
    assert!(err.to_string().contains("`layers.3.kernel` has no saved state although 3 steps were taken"), "{err}");
    let mut extra_frozen = view(&shapes);
    extra_frozen.push(("layers.3.moving_variance".to_string(), vec![4]));
    load(adam, &extra_frozen).unwrap();

    // Another optimizer, or the same one with other slots.
    let err = load(OptimizerConfig::Sgd(SgdConfig::new(0.1).with_momentum(0.9)), &shapes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot load optimizer state: it was saved by optimizer `adam`, this optimizer is `sgd`"
    );
    let err = load(OptimizerConfig::Adam(AdamConfig::new(0.3).with_amsgrad(true)), &shapes).unwrap_err();
    assert!(err.to_string().contains("has no `max_exp_avg_sq` slot"), "{err}");
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, run) = adam_bytes();

    // Another element type.
    let err = checkpoint_from_bytes::<f64>(&bytes).unwrap_err();
    assert_eq!(err.to_string(), "<memory>: the state holds f32 tensors, this run uses f64");

    // Missing, truncated, foreign files.
    let missing = dir.path().join("nope.safetensors");
    let err = load_checkpoint::<f32>(&missing).unwrap_err();
    assert!(matches!(&err, OptimError::Io { path, .. } if path == &missing), "{err}");
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 3]).unwrap();
    let err = load_checkpoint::<f32>(&truncated).unwrap_err();
    assert!(err.to_string().starts_with(&format!("{}: not a valid safetensors file", truncated.display())), "{err}");
    let foreign = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    let err = checkpoint_from_bytes::<f32>(&foreign).unwrap_err();
    assert!(err.to_string().contains("no `nn_optim` metadata"), "{err}");

    // A tensor the metadata names is missing, or one it does not name is present.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata: HashMap<String, String> = meta.metadata().clone().unwrap().into_iter().collect();
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let dropped = safetensors::serialize(tensors[1..].to_vec(), Some(metadata.clone())).unwrap();
    let err = checkpoint_from_bytes::<f32>(&dropped).unwrap_err();
    assert!(err.to_string().contains(&format!("tensor `{}` is missing", tensors[0].0)), "{err}");
    let mut more = tensors.clone();
    more.push(("stray/exp_avg".to_string(), tensors[0].1.clone()));
    let added = safetensors::serialize(more, Some(metadata)).unwrap();
    let err = checkpoint_from_bytes::<f32>(&added).unwrap_err();
    assert!(err.to_string().contains("tensor `stray/exp_avg` is not named in the metadata"), "{err}");

    // Saving replaces the file atomically and leaves no temporary file behind.
    let path = dir.path().join("adam.safetensors");
    std::fs::write(&path, b"old").unwrap();
    save_checkpoint(&path, run.opt.as_ref(), None, None).unwrap();
    save_checkpoint(&path, run.opt.as_ref(), None, None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let mut files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    files.sort();
    assert_eq!(files, ["adam.safetensors", "truncated.safetensors"]);
    let err = save_checkpoint(dir.path().join("no/such/dir/x.safetensors"), run.opt.as_ref(), None, None).unwrap_err();
    assert!(matches!(err, OptimError::Io { .. }), "{err}");
}

#[test]
fn step_with_a_frozen_only_list_counts_the_iteration() {
    // Keras counts iterations per apply call; frozen parameters create no state.
    let mut opt = OptimizerConfig::Sgd(SgdConfig::new(0.1)).build::<f32>(ParamRules::new()).unwrap();
    let mut m = Tensor::<f32>::ones(&[2]);
    let mut g = Tensor::<f32>::ones(&[2]);
    opt.step(&mut [ParamMut::new("layers.0.moving_mean", &mut m, &mut g)]).unwrap();
    assert_eq!((opt.iterations(), opt.state().params.len()), (1, 0));
    assert_eq!(m.to_vec(), vec![1.0, 1.0]);
}
