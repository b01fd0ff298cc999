//! The fusion planner: run once when a [`Model`](crate::Model) is built, it walks the
//! graph in execution order and groups known patterns into fused stages, when the
//! intermediate results have no other consumer and are not model outputs:
//!
//! | pattern | stage | what is saved |
//! |---|---|---|
//! | Conv2D (any activation but softmax) → MaxPool2D [→ Flatten] | [`Stage::ConvPool`] | the convolution's full output is never stored; the Flatten reshapes in place |
//!
//! Dense and Conv2D already run with their activation as one op (their `activation`
//! setting), so Dense + activation needs no stage of its own. In evaluation without a
//! graph ([`Model::infer`](crate::Model::infer)), Flatten, Reshape, Dropout and
//! Identity are [`Stage::Reshape`]: a reshape of the array, without a copy.
//!
//! The layers know nothing of this: the planner reads the layers' settings
//! ([`LayerSpec`]) and the graph's edges. The fused and unfused plans give
//! bit-identical values and gradients (tests/fusion.rs).

use nn_tensor::conv::Conv2dGeometry;

use crate::module::PoolWindow;
use crate::spec::LayerSpec;

use super::Source;

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stage {
    /// One layer on its own.
    Layer(usize),
    /// In evaluation without a graph, a layer that only reshapes its input (Flatten,
    /// Reshape, Identity, and Dropout, the identity in evaluation).
    Reshape(usize),
    /// A Conv2D, the MaxPool2D that alone consumes it, and a Flatten that alone
    /// consumes the pool: one op (nn-tensor's `conv_pool`). The result is the value of
    /// the last layer of the group.
    ConvPool {
        /// The Conv2D's index.
        conv: usize,
        /// The MaxPool2D's index.
        pool: usize,
        /// The Flatten's index, when folded in.
        flatten: Option<usize>,
        /// The pooling window.
        window: PoolWindow,
        /// The convolution's geometry (for the graph-free path).
        geometry: Conv2dGeometry,
    },
}

impl Stage {
    /// The layer whose inputs the stage reads (a fused stage's first layer).
    pub(crate) fn first_layer(&self) -> usize {
        match *self {
            Stage::Layer(i) | Stage::Reshape(i) => i,
            Stage::ConvPool { conv, .. } => conv,
        }
    }
}

/// What the planner reads of a built model.
pub(crate) struct GraphView<'a> {
    /// Every layer's settings, by index.
    pub specs: Vec<&'a LayerSpec>,
    /// Every layer's inputs.
    pub sources: &'a [Vec<Source>],
    /// The model's outputs.
    pub outputs: &'a [Source],
    /// Every layer's per-sample input shape (first input).
    pub input_shapes: Vec<&'a [usize]>,
    /// Execution order.
    pub order: &'a [usize],
}

impl GraphView<'_> {
    /// The only consumer of layer `i`, when exactly one layer takes it (once) and it
    /// is not a model output.
    fn sole_consumer(&self, i: usize) -> Option<usize> {
        if self.outputs.contains(&Source::Layer(i)) {
            return None;
        }
        let mut found = None;
        for (j, srcs) in self.sources.iter().enumerate() {
            for s in srcs {
                if *s == Source::Layer(i) {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(j);
                }
            }
        }
        found
    }
}

/// The training plan (`fuse`: with fused stages; otherwise one stage per layer) in
/// execution order.
pub(crate) fn plan(view: &GraphView<'_>, fuse: bool) -> Vec<Stage> {
    let mut stages = Vec::with_capacity(view.order.len());
    let mut absorbed = vec![false; view.specs.len()];
    for &i in view.order {
        if absorbed[i] {
            continue;
        }
        if fuse {
            if let Some(stage) = conv_pool(view, i) {
                if let Stage::ConvPool { pool, flatten, .. } = &stage {
                    absorbed[*pool] = true;
                    if let Some(f) = flatten {
                        absorbed[*f] = true;
                    }
                }
                stages.push(stage);
                continue;
            }
        }
        stages.push(Stage::Layer(i));
    }
    stages
}

/// The evaluation plan for the graph-free path: as [`plan`], with shape-only layers
/// as [`Stage::Reshape`].
pub(crate) fn infer_plan(view: &GraphView<'_>, fuse: bool) -> Vec<Stage> {
    plan(view, fuse)
        .into_iter()
        .map(|s| match s {
            Stage::Layer(i)
                if matches!(
                    view.specs[i],
                    LayerSpec::Flatten | LayerSpec::Reshape(_) | LayerSpec::Dropout(_) | LayerSpec::Identity
                ) =>
            {
                Stage::Reshape(i)
            }
            s => s,
        })
        .collect()
}

/// Conv2D `i` → MaxPool2D [→ Flatten], when the pattern holds.
fn conv_pool(view: &GraphView<'_>, i: usize) -> Option<Stage> {
    let LayerSpec::Conv2D(c) = view.specs[i] else { return None };
    if c.activation.runs_after_product() {
        return None;
    }
    let pool = view.sole_consumer(i)?;
    let LayerSpec::MaxPool2D(p) = view.specs[pool] else { return None };
    let flatten = view.sole_consumer(pool).filter(|&f| matches!(view.specs[f], LayerSpec::Flatten));
    let &[h, w, ch] = view.input_shapes[i] else { return None };
    let geometry = Conv2dGeometry::new(
        (h, w, ch),
        c.kernel_size.pair(),
        c.strides.pair(),
        nn_tensor::conv::Padding::from(c.padding),
    )
    .ok()?;
    let window =
        PoolWindow { pool_size: p.pool_size.pair(), strides: p.effective_strides().pair(), padding: p.padding.into() };
    Some(Stage::ConvPool { conv: i, pool, flatten, window, geometry })
}
