//! Each optimizer minimises a convex quadratic to within 1e-6 of its minimiser and
//! makes steady progress on the Rosenbrock function, within a fixed step budget.

use nn_optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, LrSchedule, Optimizer, ParamMut, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use nn_tensor::Tensor;

/// Runs `steps` steps on one 2-element parameter named `name` from `x0`, with the
/// gradient `grad(x)` and, if given, `schedule` applied before each step. Returns the
/// final point and the objective `f` sampled every `steps / 10` steps (11 values).
fn run(
    opt: &mut dyn Optimizer<f64>,
    name: &str,
    schedule: Option<&LrSchedule>,
    x0: [f64; 2],
    steps: usize,
    f: impl Fn([f64; 2]) -> f64,
    grad: impl Fn([f64; 2]) -> [f64; 2],
) -> ([f64; 2], Vec<f64>) {
    let mut x = Tensor::<f64>::from_vec(&[2], x0.to_vec());
    let mut trace = vec![f(x0)];
    for k in 1..=steps {
        let v = x.to_vec();
        let g = grad([v[0], v[1]]);
        let mut g = Tensor::<f64>::from_vec(&[2], g.to_vec());
        if let Some(s) = schedule {
            s.apply(opt).unwrap();
        }
        opt.step(&mut [ParamMut::new(name, &mut x, &mut g)]).unwrap();
        if k % (steps / 10) == 0 {
            let v = x.to_vec();
            trace.push(f([v[0], v[1]]));
        }
    }
    let v = x.to_vec();
    ([v[0], v[1]], trace)
}

/// f(x) = ½·Σ a_i·(x_i − c_i)², a = [1, 4] (condition number 4), minimiser c.
const A: [f64; 2] = [1.0, 4.0];

fn quadratic(c: [f64; 2], x: [f64; 2]) -> f64 {
    0.5 * (A[0] * (x[0] - c[0]).powi(2) + A[1] * (x[1] - c[1]).powi(2))
}

/// ∇f(x) = a ⊙ (x − c).
fn quadratic_grad(c: [f64; 2], x: [f64; 2]) -> [f64; 2] {
    [A[0] * (x[0] - c[0]), A[1] * (x[1] - c[1])]
}

/// Rosenbrock: f(x, y) = (1 − x)² + 100·(y − x²)², minimum 0 at (1, 1); start (−1.2, 1), f = 24.2.
fn rosenbrock(p: [f64; 2]) -> f64 {
    (1.0 - p[0]).powi(2) + 100.0 * (p[1] - p[0] * p[0]).powi(2)
}

fn rosenbrock_grad(p: [f64; 2]) -> [f64; 2] {
    let (x, y) = (p[0], p[1]);
    [-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)]
}

struct Case {
    what: &'static str,
    opt: Box<dyn Optimizer<f64>>,
    schedule: Option<LrSchedule>,
}

fn case(what: &'static str, opt: impl Optimizer<f64> + 'static, schedule: Option<LrSchedule>) -> Case {
    Case { what, opt: Box::new(opt), schedule }
}

/// Checks that the quadratic's minimiser `c` is reached to 1e-6 in every coordinate.
fn assert_reaches(case: &mut Case, name: &str, c: [f64; 2], steps: usize) {
    let f = |x| quadratic(c, x);
    let g = |x| quadratic_grad(c, x);
    let (x, trace) = run(case.opt.as_mut(), name, case.schedule.as_ref(), [-3.0, 4.0], steps, f, g);
    let err = (x[0] - c[0]).abs().max((x[1] - c[1]).abs());
    eprintln!("quadratic {}: |x − c|∞ = {err:.3e}, f trace {:?}", case.what, trace);
    assert!(err < 1e-6, "{}: |x − c|∞ = {err:e} after {steps} steps", case.what);
}

#[test]
fn every_optimizer_reaches_the_minimum_of_a_convex_quadratic() {
    const STEPS: usize = 3000;
    let c = [1.0, -2.0];
    // Adaptive methods take steps of size ≈ η near the minimum (m̂/√v̂ ≈ ±1), so they
    // need a decaying learning rate to settle; the cosine schedule brings η to 0.
    let cosine = |lr| Some(LrSchedule::cosine_decay(lr, STEPS as u64, 0.0));
    let mut cases = vec![
        case("sgd", Sgd::new(SgdConfig::new(0.2)).unwrap(), None),
        case("sgd momentum", Sgd::new(SgdConfig::new(0.05).with_momentum(0.9)).unwrap(), None),
        case("sgd nesterov", Sgd::new(SgdConfig::new(0.05).with_momentum(0.9).with_nesterov(true)).unwrap(), None),
        case("adam", Adam::new(AdamConfig::new(0.1)).unwrap(), cosine(0.1)),
        case("adam amsgrad", Adam::new(AdamConfig::new(0.1).with_amsgrad(true)).unwrap(), cosine(0.1)),
        case("rmsprop", RmsProp::new(RmsPropConfig::new(0.05)).unwrap(), cosine(0.05)),
        case(
            "rmsprop centered momentum",
            RmsProp::new(RmsPropConfig::new(0.01).with_centered(true).with_momentum(0.9)).unwrap(),
            cosine(0.01),
        ),
        case("adagrad", Adagrad::new(AdagradConfig::new(0.5)).unwrap(), None),
    ];
    for case in &mut cases {
        assert_reaches(case, "x", c, STEPS);
    }
    // AdamW's decay pulls towards 0, so its fixed point is the quadratic's minimiser
    // only when that is 0: minimise ½Σ a_i x_i² with the parameter named as a kernel.
    let mut adamw = case("adamw", Adam::adamw(AdamConfig::adamw(0.1).with_weight_decay(0.01)).unwrap(), cosine(0.1));
    assert_reaches(&mut adamw, "layers.0.kernel", [0.0, 0.0], STEPS);
}

#[test]
fn every_optimizer_makes_steady_progress_on_rosenbrock() {
    const STEPS: usize = 20_000;
    let start = [-1.2, 1.0];
    // (case, required final f). f starts at 24.2; "steady" means f never rises between
    // the ten checkpoints of the run. Adam, AdamW and RMSprop take steps of size ≈ η
    // near the minimum, so they halve η every 2000 steps to settle; AMSGrad's running
    // maximum of v already damps its steps, so it keeps η constant.
    let halving = |lr| Some(LrSchedule::exponential_decay(lr, 2000, 0.5, false));
    let cases = vec![
        (case("sgd", Sgd::new(SgdConfig::new(1e-3)).unwrap(), None), 1e-6),
        (case("sgd momentum", Sgd::new(SgdConfig::new(2e-4).with_momentum(0.9)).unwrap(), None), 1e-12),
        (
            case("sgd nesterov", Sgd::new(SgdConfig::new(2e-4).with_momentum(0.9).with_nesterov(true)).unwrap(), None),
            1e-12,
        ),
        (case("adam", Adam::new(AdamConfig::new(0.01)).unwrap(), halving(0.01)), 1e-12),
        (case("adam amsgrad", Adam::new(AdamConfig::new(0.01).with_amsgrad(true)).unwrap(), None), 1e-7),
        (case("adamw", Adam::adamw(AdamConfig::adamw(0.01).with_weight_decay(1e-4)).unwrap(), halving(0.01)), 1e-12),
        (case("rmsprop", RmsProp::new(RmsPropConfig::new(1e-3)).unwrap(), halving(1e-3)), 1e-8),
        (case("adagrad", Adagrad::new(AdagradConfig::new(0.1)).unwrap(), None), 1e-5),
    ];
    for (mut c, tol) in cases {
        let (x, trace) =
            run(c.opt.as_mut(), "layers.0.kernel", c.schedule.as_ref(), start, STEPS, rosenbrock, rosenbrock_grad);
        eprintln!("rosenbrock {}: x = {x:?}, f trace {trace:?}", c.what);
        let last = *trace.last().unwrap();
        assert!(last < tol, "{}: f = {last:e} after {STEPS} steps, want < {tol:e}", c.what);
        for w in trace.windows(2) {
            assert!(w[1] <= w[0], "{}: f rose from {} to {} between checkpoints", c.what, w[0], w[1]);
        }
    }
}
