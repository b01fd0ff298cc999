//! Text models served from code (random weights, seeded, byte tokenizer): a text
//! classifier answers texts exactly as the model does on the ids nn-text pads them
//! to, a language model generates exactly what [`nn_text::Generator`] does, each
//! refuses the other's route, and a tokenizer that does not fit the model is refused
//! when the service is built. (`nn-cli serve` against `nn-cli predict` and
//! `nn-cli generate` on trained folders: crates/nn-cli/tests/serve.rs.)

mod common;

use common::*;
use nn_layers::{ModelSpec, Sequential};
use nn_serve::{ModelService, ServeConfig, ServeError};
use nn_text::{Generator, Sampling, TextTokenizer};
use nn_train::ModelMetadata;

/// A transformer classifier over bytes (258 ids), context 8, three classes.
fn classifier(vocab: usize) -> ModelService {
    let spec = ModelSpec::transformer_classifier(vocab, 8, 16, 2, 1, 3, 0.0).unwrap();
    let meta = ModelMetadata {
        data: "csv:verses.csv".into(),
        class_names: Some(vec!["law".into(), "history".into(), "poetry".into()]),
        seed: 5,
        ..ModelMetadata::default()
    };
    ModelService::new(Sequential::<f32>::new(spec, 5).unwrap(), meta).unwrap()
}

/// A gpt over bytes, context 12.
fn gpt() -> ModelService {
    let spec = ModelSpec::gpt(258, 12, 16, 2, 1, 0.0).unwrap();
    let meta = ModelMetadata { data: "text:kjv.txt".into(), seed: 7, ..ModelMetadata::default() };
    ModelService::new(Sequential::<f32>::new(spec, 7).unwrap(), meta).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_classifier_answers_texts_as_the_model_does_on_padded_ids() {
    let service = classifier(258).with_text_column(TextTokenizer::bytes(), "verse").unwrap();
    // Padded (3 and 1 bytes), exactly the context, and cut (21 bytes: 8 kept).
    let texts = ["God", "x", "Let ther", "And God said, Let th"];
    let padded = nn_text::encode_padded(texts, &TextTokenizer::bytes(), 8).unwrap();
    assert_eq!(padded.lengths, [3, 1, 8, 8]);
    // Byte b is id b + 2, <pad> is 0: "God" is 71+2, 111+2, 100+2 and five pads.
    assert_eq!(&padded.features[..8], &[73.0, 113.0, 102.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let x = nn_tensor::Tensor::try_from_vec(&[4, 8], padded.features).unwrap();
    let reference = nn_train::predict(service.model(), &x, 100).unwrap().outputs.to_vec();
    let reference: Vec<Vec<u32>> = reference.chunks(3).map(|r| r.iter().map(|v| v.to_bits()).collect()).collect();

    let server = start_service(service, ServeConfig::default()).await;
    let body = serde_json::json!({ "inputs": [texts[0], { "verse": texts[1] }, texts[2], { "verse": texts[3], "book": "Gen" }] });
    let answer = send(server.addr, "POST", "/v1/predict", body.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(answer["ignored"], serde_json::json!(["book"]));
    for (i, want) in reference.iter().enumerate() {
        let p = &answer["predictions"][i];
        let got: Vec<u32> =
            p["probabilities"].as_array().unwrap().iter().map(|v| (v.as_f64().unwrap() as f32).to_bits()).collect();
        assert_eq!(&got, want, "text {i}");
        let class = p["class"].as_u64().unwrap() as usize;
        assert_eq!(p["name"], ["law", "history", "poetry"][class]);
    }

    let info = send(server.addr, "GET", "/v1/model", "").await.json();
    assert_eq!(info["input_kind"], "text");
    assert_eq!(
        info["text"],
        serde_json::json!({"column": "verse", "context": 8, "vocab_size": 258, "tokenizer": "bytes", "language_model": false})
    );
    let wrong = send(server.addr, "POST", "/v1/generate", r#"{"prompt": "God"}"#).await;
    assert_eq!((wrong.status, wrong.json()["kind"].as_str()), (400, Some("wrong_route")), "{}", wrong.text());
    let empty = send(server.addr, "POST", "/v1/predict", r#"{"inputs": ["God", {"verse": ""}]}"#).await;
    assert_eq!(empty.status, 422, "{}", empty.text());
    assert_eq!(empty.json()["column"], "verse");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_language_model_generates_what_the_generator_does() {
    let service = gpt().with_language_model(TextTokenizer::bytes()).unwrap();
    let tok = TextTokenizer::bytes();
    let mut generator = Generator::new(service.model()).unwrap();
    let prompt = tok.encode("In the").unwrap();
    let sampling = Sampling { temperature: 0.7, top_k: Some(20), seed: 3 };
    let new = generator.generate(&prompt, 5, &sampling, tok.eos_id()).unwrap();
    let want = tok.decode(&[prompt.clone(), new.clone()].concat()).unwrap();

    let server = start_service(service, ServeConfig::default()).await;
    let info = send(server.addr, "GET", "/v1/model", "").await.json();
    assert_eq!(
        (&info["output_kind"], &info["task"]),
        (&serde_json::json!("next_token_logits"), &serde_json::json!("classification"))
    );
    assert_eq!(info["text"]["language_model"], true, "{info}");
    let body = r#"{"prompt": "In the", "max_tokens": 5, "temperature": 0.7, "top_k": 20, "seed": 3}"#;
    let answer = send(server.addr, "POST", "/v1/generate", body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(answer["text"].as_str().unwrap(), want);
    assert_eq!((answer["tokens"].as_u64(), answer["prompt_tokens"].as_u64()), (Some(new.len() as u64), Some(6)));
    // Without max_tokens: the rest of the context (12 − 6 prompt bytes).
    let rest = send(server.addr, "POST", "/v1/generate", r#"{"prompt": "In the", "temperature": 0}"#).await.json();
    assert_eq!(rest["tokens"], 6, "{rest}");

    let over = send(server.addr, "POST", "/v1/generate", r#"{"prompt": "In the", "max_tokens": 7}"#).await;
    assert_eq!(over.status, 422, "{}", over.text());
    assert_eq!(over.json()["column"], "max_tokens");
    let wrong = send(server.addr, "POST", "/v1/predict", r#"{"inputs": ["In the"]}"#).await;
    assert_eq!(wrong.status, 400, "{}", wrong.text());
    assert!(wrong.json()["error"].as_str().unwrap().contains("POST /v1/generate"), "{}", wrong.text());
    server.shutdown().await.unwrap();
}

#[test]
fn a_tokenizer_or_model_that_does_not_fit_is_refused() {
    let err = classifier(300).with_text_column(TextTokenizer::bytes(), "verse").unwrap_err();
    assert!(matches!(err, ServeError::Metadata(_)), "{err}");
    assert!(err.to_string().contains("the tokenizer has 258 tokens, but the model's vocabulary has 300"), "{err}");
    // A classifier is not a decoder-only transformer: no generation.
    let err = classifier(258).with_language_model(TextTokenizer::bytes()).unwrap_err();
    assert!(err.to_string().contains("not a decoder-only causal transformer"), "{err}");
}
