//! The key/value-cache generator against the model's own forward pass
//! (`Model::infer` on the whole prefix), greedy decoding against a loop that
//! recomputes the whole context every step, and the sampler against the softmax
//! formula.

use nn_layers::{LayerSpec, Model, ModelSpec, SinePositionEncodingConfig, Tensor};
use nn_text::generate::{sampling_probabilities, GenerateError, Generator, Sampler, Sampling};

const VOCAB: usize = 50;
const CONTEXT: usize = 16;

/// The small random gpt of these tests: vocabulary 50, context 16, width 32, 2 heads,
/// 2 blocks.
fn small_gpt(dropout: f64) -> Model<f32> {
    Model::new(ModelSpec::gpt(VOCAB, CONTEXT, 32, 2, 2, dropout).unwrap(), 3).unwrap()
}

/// A fixed pseudo-random token sequence (a linear congruential generator).
fn tokens(n: usize, seed: u64) -> Vec<u32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % VOCAB as u64) as u32
        })
        .collect()
}

/// The model's logits for the next token after `prefix` (padded with id 0 to the
/// context; causal attention makes the padding irrelevant): `[vocab]`.
fn full_logits(model: &Model<f32>, prefix: &[u32]) -> Vec<f32> {
    let context = model.input_shape()[0];
    let mut ids: Vec<f32> = prefix.iter().map(|&t| t as f32).collect();
    ids.resize(context, 0.0);
    let x = Tensor::from_vec(&[1, context], ids);
    let y = model.infer(x.view(), true).unwrap();
    let vocab = y.shape()[2];
    y.to_vec()[(prefix.len() - 1) * vocab..][..vocab].to_vec()
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Feeds `seq` one token at a time and checks every position's logits against the
/// full forward pass on that prefix; returns the largest difference.
fn check_against_full(model: &Model<f32>, seq: &[u32]) -> f32 {
    let mut g = Generator::new(model).unwrap();
    let mut worst = 0.0f32;
    for t in 0..seq.len() {
        let cached = g.feed(seq[t]).unwrap().to_vec();
        let full = full_logits(model, &seq[..=t]);
        assert_eq!(cached.len(), full.len());
        for (i, (&a, &b)) in cached.iter().zip(&full).enumerate() {
            assert!((a - b).abs() <= 1e-5, "position {t}, id {i}: cached {a} vs full {b}");
            worst = worst.max((a - b).abs());
        }
    }
    assert_eq!(g.position(), seq.len());
    worst
}

#[test]
fn cached_logits_equal_the_full_forward_at_every_position() {
    let model = small_gpt(0.0);
    let g = Generator::new(&model).unwrap();
    assert_eq!((g.vocab_size(), g.context(), g.num_layers()), (VOCAB, CONTEXT, 2));
    let worst = check_against_full(&model, &tokens(CONTEXT, 1));
    // The logits are not trivially small: the comparison means something.
    let spread = full_logits(&model, &tokens(4, 1)).iter().fold(0.0f32, |a, &v| a.max(v.abs()));
    assert!(spread > 0.1, "logits too small to compare: {spread}");
    eprintln!("largest |cached − full| over 16 positions: {worst:e}");
}

/// Dropout layers (no-ops in evaluation) are skipped, and a reset starts again at
/// position 0 with the same logits.
#[test]
fn dropout_layers_are_skipped_and_reset_starts_over() {
    let model = small_gpt(0.1);
    check_against_full(&model, &tokens(CONTEXT, 2));
    let mut g = Generator::new(&model).unwrap();
    let first = g.feed(7).unwrap().to_vec();
    g.feed(8).unwrap();
    g.reset();
    assert_eq!(g.position(), 0);
    assert_eq!(g.feed(7).unwrap(), first.as_slice());
}

/// The fixed sinusoidal position encoding in place of the learned table.
#[test]
fn sine_position_encoding_matches_the_full_forward() {
    let mut spec = ModelSpec::gpt(VOCAB, CONTEXT, 32, 4, 1, 0.0).unwrap();
    let pos = spec.layers.iter().position(|n| n.name.as_deref() == Some("position_embedding")).unwrap();
    spec.layers[pos].layer = LayerSpec::SinePositionEncoding(SinePositionEncodingConfig::default());
    let model = Model::new(spec, 5).unwrap();
    check_against_full(&model, &tokens(CONTEXT, 3));
}

/// Greedy decoding with the cache gives the same tokens as recomputing the whole
/// context each step and taking the argmax of the last position.
#[test]
fn greedy_generation_equals_the_recompute_loop() {
    let model = small_gpt(0.0);
    let prompt = tokens(3, 4);
    let n = CONTEXT - prompt.len();
    let mut reference = prompt.clone();
    for _ in 0..n {
        let next = argmax(&full_logits(&model, &reference));
        reference.push(next);
    }
    let mut g = Generator::new(&model).unwrap();
    let got = g.generate(&prompt, n, &Sampling::greedy(), None).unwrap();
    assert_eq!(got, reference[prompt.len()..]);
    // Not a degenerate sequence of one repeated token.
    assert!(got.iter().any(|&t| t != got[0]), "{got:?}");
}

#[test]
fn the_same_seed_gives_the_same_tokens() {
    let model = small_gpt(0.0);
    let mut g = Generator::new(&model).unwrap();
    let prompt = [5, 6];
    let sampling = Sampling { temperature: 1.0, top_k: None, seed: 42 };
    let a = g.generate(&prompt, 14, &sampling, None).unwrap();
    let b = g.generate(&prompt, 14, &sampling, None).unwrap();
    assert_eq!(a, b);
    let c = g.generate(&prompt, 14, &Sampling { seed: 43, ..sampling }, None).unwrap();
    assert_ne!(a, c, "14 draws from 50 tokens agreeing for two seeds");
    // A fresh generator gives the same draws again.
    assert_eq!(Generator::new(&model).unwrap().generate(&prompt, 14, &sampling, None).unwrap(), a);
}

#[test]
fn top_k_one_is_greedy_at_any_temperature() {
    let model = small_gpt(0.0);
    let mut g = Generator::new(&model).unwrap();
    let greedy = g.generate(&[1, 2, 3], 10, &Sampling::greedy(), None).unwrap();
    let top1 = g.generate(&[1, 2, 3], 10, &Sampling { temperature: 2.5, top_k: Some(1), seed: 9 }, None).unwrap();
    assert_eq!(greedy, top1);
}

/// Generation stops before the end-of-sequence token: with `eos` set to the token
/// greedy decoding produces third, exactly two tokens come back.
#[test]
fn generation_stops_at_eos() {
    let model = small_gpt(0.0);
    let mut g = Generator::new(&model).unwrap();
    let full = g.generate(&[4], 10, &Sampling::greedy(), None).unwrap();
    let eos = full[2];
    let first = full.iter().position(|&t| t == eos).unwrap();
    let stopped = g.generate(&[4], 10, &Sampling::greedy(), Some(eos)).unwrap();
    assert_eq!(stopped, full[..first]);
}

/// `softmax(l / T)` by hand: logits `[0, ln 2, ln 3]` give `[1, 2, 3]/6` at T = 1 and
/// `[1, 4, 9]/14` at T = 0.5; top-2 keeps ids 1 and 2 (`[2, 3]/5`); greedy is one-hot
/// at the first largest logit.
#[test]
fn sampling_probabilities_by_hand() {
    let logits = [0.0, 2f32.ln(), 3f32.ln()];
    let close = |got: Vec<f64>, want: [f64; 3]| {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    };
    let s = |temperature: f64, top_k: Option<usize>| Sampling { temperature, top_k, seed: 0 };
    close(sampling_probabilities(&logits, &s(1.0, None)).unwrap(), [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]);
    close(sampling_probabilities(&logits, &s(0.5, None)).unwrap(), [1.0 / 14.0, 4.0 / 14.0, 9.0 / 14.0]);
    close(sampling_probabilities(&logits, &s(1.0, Some(2))).unwrap(), [0.0, 0.4, 0.6]);
    close(sampling_probabilities(&logits, &s(1.0, Some(10))).unwrap(), [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]);
    close(sampling_probabilities(&[1.0, 3.0, 3.0], &s(0.0, None)).unwrap(), [0.0, 1.0, 0.0]);
    // Ties at the top-k boundary go to the lowest id.
    close(sampling_probabilities(&[1.0, 2.0, 2.0], &s(1.0, Some(2))).unwrap(), [0.0, 0.5, 0.5]);
    close(sampling_probabilities(&[2.0, 1.0, 2.0], &s(1.0, Some(1))).unwrap(), [1.0, 0.0, 0.0]);
}

/// 20,000 draws at T = 0.7 (and with top-3): every token's frequency is within 4.5
/// binomial standard deviations `√(p(1 − p)/n)` of `softmax(l/T)`; ids outside the
/// top 3 are never drawn.
#[test]
fn sampled_frequencies_match_the_softmax() {
    let logits = [2.0, 1.0, 0.0, -1.0, 0.5];
    let n = 20_000;
    for top_k in [None, Some(3)] {
        let sampling = Sampling { temperature: 0.7, top_k, seed: 11 };
        // The expected distribution from the formula, written out here.
        let kept: Vec<usize> = match top_k {
            None => (0..5).collect(),
            Some(_) => vec![0, 1, 4],
        };
        let z: f64 = kept.iter().map(|&i| (f64::from(logits[i]) / 0.7).exp()).sum();
        let mut sampler = Sampler::new(&sampling).unwrap();
        let mut counts = [0usize; 5];
        for _ in 0..n {
            counts[sampler.sample(&logits).unwrap() as usize] += 1;
        }
        for i in 0..5 {
            let p = if kept.contains(&i) { (f64::from(logits[i]) / 0.7).exp() / z } else { 0.0 };
            let freq = counts[i] as f64 / n as f64;
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!((freq - p).abs() <= 4.5 * sd + 1e-12, "top_k {top_k:?}, id {i}: frequency {freq} vs p {p}");
        }
    }
}

#[test]
fn bad_settings_and_inputs_are_typed_errors() {
    let model = small_gpt(0.0);
    let mut g = Generator::new(&model).unwrap();
    let greedy = Sampling::greedy();
    assert_eq!(g.generate(&[], 3, &greedy, None), Err(GenerateError::EmptyPrompt));
    let e = g.generate(&[1, 2, 3, 4], 13, &greedy, None).unwrap_err();
    assert_eq!(e, GenerateError::TooLong { prompt: 4, max_tokens: 13, total: 17, context: 16 });
    let msg = e.to_string();
    assert!(msg.contains("(4 tokens)") && msg.contains("(13)") && msg.contains("context of 16"), "{msg}");
    // 4 + 12 fills the context exactly.
    assert_eq!(g.generate(&[1, 2, 3, 4], 12, &greedy, None).unwrap().len(), 12);
    assert_eq!(
        g.generate(&[1, 50], 3, &greedy, None),
        Err(GenerateError::UnknownToken { id: 50, position: 1, vocab_size: 50 })
    );
    for bad in [-0.1, f64::NAN, f64::INFINITY] {
        let e = g.generate(&[1], 3, &Sampling { temperature: bad, ..greedy }, None).unwrap_err();
        assert!(matches!(e, GenerateError::Sampling { .. }), "{bad}: {e}");
    }
    let e = g.generate(&[1], 3, &Sampling { top_k: Some(0), ..greedy }, None).unwrap_err();
    assert!(e.to_string().contains("top_k must be at least 1"), "{e}");
    assert!(matches!(
        Sampler::new(&greedy).unwrap().sample(&[1.0, f32::NAN]),
        Err(GenerateError::NonFiniteLogits { id: 1, .. })
    ));

    // Feeding past the context.
    g.reset();
    for t in tokens(CONTEXT, 6) {
        g.feed(t).unwrap();
    }
    assert_eq!(g.feed(1).unwrap_err(), GenerateError::ContextFull { context: 16 });
    assert_eq!(g.position(), CONTEXT);
}

/// The message of a model that is not a gpt names its first layer that does not fit.
fn not_a_gpt(spec: ModelSpec) -> (String, String) {
    let model = Model::<f32>::new(spec, 0).unwrap();
    match Generator::new(&model) {
        Err(GenerateError::NotAGpt { at, message }) => (at, message),
        other => panic!("expected NotAGpt, got {other:?}"),
    }
}

#[test]
fn models_that_are_not_a_gpt_are_refused_naming_the_layer() {
    // An encoder classifier: padding mask first, bidirectional attention, pooling.
    let (at, _) = not_a_gpt(ModelSpec::transformer_classifier(VOCAB, CONTEXT, 32, 2, 1, 3, 0.0).unwrap());
    assert_eq!(at, "layer \"padding_mask\" (PaddingMask)");

    // A gpt whose second block's attention is not causal.
    let mut spec = ModelSpec::gpt(VOCAB, CONTEXT, 32, 2, 2, 0.0).unwrap();
    let i = spec.layers.iter().position(|n| n.name.as_deref() == Some("block1_attention")).unwrap();
    let LayerSpec::MultiHeadAttention(c) = spec.layers[i].layer else { unreachable!() };
    spec.layers[i].layer = LayerSpec::MultiHeadAttention(c.with_causal_mask(false));
    let (at, message) = not_a_gpt(spec);
    assert_eq!(at, "layer \"block1_attention\" (MultiHeadAttention)");
    assert!(message.contains("not causal"), "{message}");

    // A gpt whose first attention has LoRA adapters: refused like a LoRA Dense.
    let mut spec = ModelSpec::gpt(VOCAB, CONTEXT, 32, 2, 1, 0.0).unwrap();
    let i = spec.layers.iter().position(|n| n.name.as_deref() == Some("block0_attention")).unwrap();
    let LayerSpec::MultiHeadAttention(c) = spec.layers[i].layer else { unreachable!() };
    spec.layers[i].layer = LayerSpec::MultiHeadAttention(c.with_lora(Some(nn_layers::LoraConfig::new(2, 2.0))));
    let (at, message) = not_a_gpt(spec);
    assert_eq!(at, "layer \"block0_attention\" (MultiHeadAttention)");
    assert!(message.contains("merge them first"), "{message}");

    // A logits layer whose width is not the vocabulary.
    let mut spec = ModelSpec::gpt(VOCAB, CONTEXT, 32, 2, 1, 0.0).unwrap();
    spec.layers.last_mut().unwrap().layer = LayerSpec::dense(49, nn_layers::Activation::Linear);
    let (at, message) = not_a_gpt(spec);
    assert_eq!(at, "layer \"logits\" (Dense)");
    assert!(message.contains("50 units, got 49"), "{message}");

    // An MLP over 16 features (Flatten first).
    let (at, message) = not_a_gpt(ModelSpec::mlp(&[16], 8, 3, 0.0));
    assert_eq!(at, "layer \"flatten_0\" (Flatten)");
    assert!(message.contains("expected a token Embedding"), "{message}");

    // An image input.
    let (at, message) = not_a_gpt(ModelSpec::seed_cnn(&[8, 8, 1], 10));
    assert_eq!(at, "the model's inputs");
    assert!(message.contains("[8, 8, 1]"), "{message}");
}
