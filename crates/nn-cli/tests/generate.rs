//! `nn-cli generate` on a small gpt folder built here (model.json + weights +
//! tokenizer.json): the text it prints against the library's generator, seeds, and
//! one `error:` line for each bad input.

mod common;

use std::path::Path;

use common::{fails_with, nn, stdout};
use nn_layers::{Model, ModelSpec};
use nn_text::{Generator, Sampling, TextTokenizer};

/// Context of the test model.
const CONTEXT: usize = 24;

/// A random gpt over the byte tokenizer (vocabulary 258, context 24, width 16, 2
/// heads, 1 block), saved in `dir` with its tokenizer.json.
fn gpt_folder(dir: &Path) -> Model<f32> {
    let model = Model::<f32>::new(ModelSpec::gpt(258, CONTEXT, 16, 2, 1, 0.0).unwrap(), 1).unwrap();
    model.save(dir).unwrap();
    TextTokenizer::bytes().save(dir.join("tokenizer.json")).unwrap();
    model
}

/// What `generate` must print: the prompt and the library's continuation, stopping
/// at `<eos>`.
fn expected(model: &Model<f32>, prompt: &str, max_tokens: usize, sampling: &Sampling) -> String {
    let tok = TextTokenizer::bytes();
    let mut ids = tok.encode(prompt).unwrap();
    let new = Generator::new(model).unwrap().generate(&ids, max_tokens, sampling, tok.eos_id()).unwrap();
    ids.extend(new);
    format!("{}\n", tok.decode(&ids).unwrap())
}

fn generate(dir: &Path) -> assert_cmd::Command {
    let mut c = nn();
    c.arg("generate").arg("--model").arg(dir);
    c
}

#[test]
fn prints_the_prompt_and_the_generators_continuation() {
    let tmp = tempfile::tempdir().unwrap();
    let model = gpt_folder(tmp.path());
    // Greedy.
    let out = stdout(generate(tmp.path()).args(["--prompt", "In the", "--max-tokens", "10", "--temperature", "0"]));
    assert!(out.starts_with("In the"), "{out}");
    assert_eq!(out, expected(&model, "In the", 10, &Sampling::greedy()));
    // Sampled: the same seed gives the same text, and the text is the library's.
    let args = ["--prompt", "God", "--max-tokens", "12", "--temperature", "0.8", "--top-k", "40", "--seed", "7"];
    let a = stdout(generate(tmp.path()).args(args));
    let b = stdout(generate(tmp.path()).args(args));
    assert_eq!(a, b);
    assert_eq!(a, expected(&model, "God", 12, &Sampling { temperature: 0.8, top_k: Some(40), seed: 7 }));
    // By default the rest of the context is filled (or the text ends at <eos>).
    let full = stdout(generate(tmp.path()).args(["--prompt", "abc", "--temperature", "0"]));
    assert_eq!(full, expected(&model, "abc", CONTEXT - 3, &Sampling::greedy()));
}

#[test]
fn reports_the_speed_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    gpt_folder(tmp.path());
    let out = generate(tmp.path()).args(["--prompt", "x", "--max-tokens", "3", "--top-k", "1"]).assert().success();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("after a prompt of 1 tokens") && err.contains("tokens/s"), "{err}");
}

#[test]
fn bad_prompts_and_settings_give_one_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    gpt_folder(tmp.path());
    let dir = tmp.path();
    fails_with(generate(dir).args(["--prompt", ""]), "--prompt is empty");
    // 5 prompt bytes + 20 = 25 > 24.
    fails_with(
        generate(dir).args(["--prompt", "hello", "--max-tokens", "20"]),
        "the prompt (5 tokens) plus max tokens (20) is 25 tokens, longer than the model's context of 24 tokens",
    );
    fails_with(
        generate(dir).args(["--prompt", "hi", "--temperature", "-1"]),
        "--temperature must be a finite number ≥ 0, got -1",
    );
    fails_with(generate(dir).args(["--prompt", "hi", "--temperature", "NaN"]), "got NaN");
    fails_with(generate(dir).args(["--prompt", "hi", "--top-k", "0"]), "--top-k must be at least 1");
    // A prompt as long as the context leaves no room by default.
    fails_with(generate(dir).args(["--prompt", &"a".repeat(CONTEXT)]), "leaves no room in the model's context of 24");
}

#[cfg(unix)]
#[test]
fn a_prompt_that_is_not_utf8_is_refused() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    gpt_folder(tmp.path());
    let bad = OsStr::from_bytes(b"ab\xffc");
    fails_with(
        generate(tmp.path()).arg("--prompt").arg(bad),
        "--prompt is not valid UTF-8: invalid byte 0xff at byte offset 2",
    );
}

#[test]
fn a_folder_that_is_not_a_gpt_or_lacks_its_tokenizer_is_refused() {
    // An MLP over 24 features, with a tokenizer beside it.
    let mlp = tempfile::tempdir().unwrap();
    Model::<f32>::new(ModelSpec::mlp(&[CONTEXT], 8, 3, 0.0), 0).unwrap().save(mlp.path()).unwrap();
    TextTokenizer::bytes().save(mlp.path().join("tokenizer.json")).unwrap();
    fails_with(
        generate(mlp.path()).args(["--prompt", "hi"]),
        "not a decoder-only causal transformer (the gpt preset's arrangement): layer \"flatten_0\" (Flatten)",
    );
    // A gpt without its tokenizer.
    let bare = tempfile::tempdir().unwrap();
    gpt_folder(bare.path());
    std::fs::remove_file(bare.path().join("tokenizer.json")).unwrap();
    fails_with(generate(bare.path()).args(["--prompt", "hi"]), "the folder has no tokenizer.json");
    // A gpt over 300 tokens beside the byte tokenizer's 258.
    let other = tempfile::tempdir().unwrap();
    Model::<f32>::new(ModelSpec::gpt(300, CONTEXT, 16, 2, 1, 0.0).unwrap(), 0).unwrap().save(other.path()).unwrap();
    TextTokenizer::bytes().save(other.path().join("tokenizer.json")).unwrap();
    fails_with(generate(other.path()).args(["--prompt", "hi"]), "258 tokens, but the model's vocabulary has 300");
}
