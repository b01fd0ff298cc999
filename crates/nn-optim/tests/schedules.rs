//! Learning-rate schedules equal their closed forms at chosen steps; reduce-on-plateau
//! follows Keras's callback step by step; both survive serde round trips.

use nn_optim::{LrSchedule, OptimError, Optimizer, ParamMut, PlateauMode, ReduceLrOnPlateau, Sgd, SgdConfig};
use nn_tensor::Tensor;
use std::f64::consts::PI;

fn assert_lr(s: &LrSchedule, step: u64, want: f64) {
    let got = s.learning_rate(step);
    assert!((got - want).abs() <= 1e-15 * want.abs().max(1e-3), "{s:?} at step {step}: got {got}, want {want}");
}

#[test]
fn constant() {
    let s = LrSchedule::constant(0.01);
    for step in [0, 1, 1000, u64::MAX] {
        assert_eq!(s.learning_rate(step), 0.01);
    }
}

#[test]
fn step_decay() {
    // lr = 0.1 · 0.5^⌊step / 10⌋
    let s = LrSchedule::step_decay(0.1, 10, 0.5);
    for (step, want) in [(0, 0.1), (9, 0.1), (10, 0.05), (19, 0.05), (20, 0.025), (35, 0.0125)] {
        assert_lr(&s, step, want);
    }
}

#[test]
fn exponential_decay_smooth_and_staircase() {
    // lr = 0.1 · 0.96^(step / 100); staircase: 0.1 · 0.96^⌊step / 100⌋
    let smooth = LrSchedule::exponential_decay(0.1, 100, 0.96, false);
    let stairs = LrSchedule::exponential_decay(0.1, 100, 0.96, true);
    assert_lr(&smooth, 0, 0.1);
    assert_lr(&smooth, 50, 0.1 * 0.96f64.sqrt()); // 0.0979795897...
    assert_lr(&smooth, 100, 0.096);
    assert_lr(&smooth, 250, 0.1 * 0.96f64.powf(2.5));
    assert_lr(&stairs, 50, 0.1);
    assert_lr(&stairs, 199, 0.096);
    assert_lr(&stairs, 250, 0.1 * 0.96 * 0.96); // 0.09216
}

#[test]
fn cosine_decay_without_warmup() {
    // lr = 0.1 · ((1 − α)·½(1 + cos(π·min(step, 100)/100)) + α), α = 0.1
    let s = LrSchedule::cosine_decay(0.1, 100, 0.1);
    assert_lr(&s, 0, 0.1);
    assert_lr(&s, 25, 0.1 * (0.9 * 0.5 * (1.0 + (PI / 4.0).cos()) + 0.1));
    assert_lr(&s, 50, 0.055); // 0.1·(0.9·0.5 + 0.1)
    assert_lr(&s, 100, 0.01); // α·initial
    assert_lr(&s, 150, 0.01); // held after the decay
}

#[test]
fn cosine_decay_with_linear_warmup() {
    // From 0 to the peak 0.1 linearly over 10 steps, then cosine to 0 over 100 steps.
    let s = LrSchedule::cosine_decay_with_warmup(0.0, 10, 0.1, 100, 0.0);
    assert_lr(&s, 0, 0.0);
    assert_lr(&s, 3, 0.03);
    assert_lr(&s, 5, 0.05);
    assert_lr(&s, 10, 0.1); // the peak
    assert_lr(&s, 35, 0.1 * 0.5 * (1.0 + (PI / 4.0).cos())); // 25 steps into the decay: 0.0853553...
    assert_lr(&s, 60, 0.05); // half way
    assert_lr(&s, 110, 0.0);
    assert_lr(&s, 1000, 0.0);
    // Warm-up from a non-zero start: 0.01 + (0.1 − 0.01)·4/10 = 0.046.
    let s = LrSchedule::cosine_decay_with_warmup(0.01, 10, 0.1, 100, 0.2);
    assert_lr(&s, 4, 0.046);
    assert_lr(&s, 110, 0.02); // α·peak
}

#[test]
fn apply_uses_the_optimizer_iterations() {
    let s = LrSchedule::step_decay(0.1, 2, 0.5);
    let mut opt = Sgd::<f64>::new(SgdConfig::new(1.0)).unwrap();
    let mut w = Tensor::<f64>::zeros(&[1]);
    let mut g = Tensor::<f64>::ones(&[1]);
    let mut used = Vec::new();
    for _ in 0..5 {
        used.push(s.apply(&mut opt).unwrap());
        opt.step(&mut [ParamMut::new("w", &mut w, &mut g)]).unwrap();
    }
    assert_eq!(used, [0.1, 0.1, 0.05, 0.05, 0.025]);
    // w = −Σ lr·g
    assert!((w.to_vec()[0] + 0.325).abs() < 1e-15);
}

#[test]
fn invalid_schedules_are_rejected() {
    for s in [
        LrSchedule::constant(-1.0),
        LrSchedule::step_decay(0.1, 0, 0.5),
        LrSchedule::exponential_decay(0.1, 0, 0.5, true),
        LrSchedule::cosine_decay(0.1, 10, 1.5),
        LrSchedule::cosine_decay_with_warmup(0.0, 0, 0.1, 10, 0.0),
    ] {
        assert!(matches!(s.validate(), Err(OptimError::InvalidHyperparameter { .. })), "{s:?}");
    }
    let mut opt = Sgd::<f32>::new(SgdConfig::new(0.1)).unwrap();
    assert!(LrSchedule::constant(f64::NAN).apply(&mut opt).is_err());
    assert_eq!(opt.learning_rate(), 0.1);
}

#[test]
fn schedules_round_trip_through_json() {
    let all = [
        LrSchedule::constant(0.1 + 0.2),
        LrSchedule::step_decay(1.0 / 3.0, 7, 0.9),
        LrSchedule::exponential_decay(0.1, 100, 0.96, true),
        LrSchedule::cosine_decay_with_warmup(1e-7, 500, 3e-4, 10_000, 0.05),
    ];
    for s in all {
        let json = serde_json::to_string(&s).unwrap();
        let back: LrSchedule = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s, "{json}");
    }
    let json = r#"{"kind": "step_decay", "initial_learning_rate": 0.1, "step_size": 5, "gamma": 0.5}"#;
    assert_eq!(serde_json::from_str::<LrSchedule>(json).unwrap(), LrSchedule::step_decay(0.1, 5, 0.5));
    let typo = r#"{"kind": "step_decay", "initial_learning_rate": 0.1, "step_size": 5, "gama": 0.5}"#;
    assert!(serde_json::from_str::<LrSchedule>(typo).is_err());
}

#[test]
fn plateau_follows_keras_step_by_step() {
    // mode min, patience 2, factor 0.5, min_delta 0.01, cooldown 2, min_lr 0.02; lr 0.1.
    // As in Keras, the cooldown counter is decremented before the check, so a cooldown
    // of c leaves c − 1 epochs uncounted after a reduction.
    let mut p = ReduceLrOnPlateau::new()
        .with_mode(PlateauMode::Min)
        .with_patience(2)
        .with_factor(0.5)
        .with_min_delta(0.01)
        .with_cooldown(2)
        .with_min_lr(0.02);
    let mut lr = 0.1;
    // (metric, expected lr after, best, wait, cooldown_counter), traced by hand:
    let trace = [
        (1.0, 0.1, 1.0, 0, 0),     // improves on +∞
        (0.995, 0.1, 1.0, 1, 0),   // not below 1.0 − 0.01: wait 1
        (0.98, 0.1, 0.98, 0, 0),   // 0.98 < 0.99: improvement
        (0.98, 0.1, 0.98, 1, 0),   // wait 1
        (0.975, 0.05, 0.98, 0, 2), // wait 2 ≥ patience: lr·0.5, cooldown 2, wait 0
        (0.99, 0.05, 0.98, 0, 1),  // in cooldown: counter 2 → 1, nothing counted
        (0.99, 0.05, 0.98, 1, 0),  // counter 1 → 0, then counted: wait 1
        (0.99, 0.025, 0.98, 0, 2), // wait 2: 0.05·0.5
        (0.99, 0.025, 0.98, 0, 1),
        (0.99, 0.025, 0.98, 1, 0),
        (0.99, 0.02, 0.98, 0, 2), // 0.0125 raised to min_lr 0.02
        (0.99, 0.02, 0.98, 0, 1),
        (0.99, 0.02, 0.98, 1, 0),
        (0.99, 0.02, 0.98, 2, 0),     // lr = min_lr: no reduction, wait keeps growing
        (f64::NAN, 0.02, 0.98, 3, 0), // NaN is never an improvement
        (0.5, 0.02, 0.5, 0, 0),
    ];
    for (i, (metric, want_lr, best, wait, cooldown)) in trace.into_iter().enumerate() {
        lr = p.observe(metric, lr).unwrap();
        assert_eq!((lr, p.best(), p.wait(), p.cooldown_counter()), (want_lr, best, wait, cooldown), "epoch {i}");
    }
}

#[test]
fn plateau_max_mode_and_auto_direction() {
    let p = ReduceLrOnPlateau::new().with_monitor("val_accuracy");
    assert!(p.maximizes());
    assert_eq!(p.best(), f64::NEG_INFINITY);
    assert!(!ReduceLrOnPlateau::new().maximizes()); // val_loss
    let mut p = p.with_patience(1).with_min_delta(0.0);
    let mut opt = Sgd::<f32>::new(SgdConfig::new(0.1)).unwrap();
    assert!(!p.apply(0.5, &mut opt).unwrap()); // improvement
    assert!(!p.apply(0.6, &mut opt).unwrap()); // improvement
    assert!(p.apply(0.6, &mut opt).unwrap()); // no improvement, patience 1: reduce
    assert!((opt.learning_rate() - 0.01).abs() < 1e-17);
}

#[test]
fn plateau_state_round_trips_through_json_exactly() {
    let fresh = ReduceLrOnPlateau::new();
    let json = serde_json::to_string(&fresh).unwrap();
    assert!(json.contains(r#""best":"inf""#), "{json}");
    assert_eq!(serde_json::from_str::<ReduceLrOnPlateau>(&json).unwrap(), fresh);

    let mut p = ReduceLrOnPlateau::new().with_patience(3).with_cooldown(2);
    p.observe(0.123_456_789_012_345_67, 0.1).unwrap();
    p.observe(0.2, 0.1).unwrap();
    let back: ReduceLrOnPlateau = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.best().to_bits(), p.best().to_bits());
    assert_eq!(back.wait(), 1);

    assert!(ReduceLrOnPlateau::new().with_factor(1.0).observe(1.0, 0.1).is_err());
}
