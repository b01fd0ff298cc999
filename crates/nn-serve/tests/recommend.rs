//! A recommender over HTTP: `POST /v1/recommend` and `/v1/similar` answer what
//! `nn_recommend::rank::top_n` gives on the model's own scores, and bad requests get
//! typed JSON errors.

use nn_recommend::model::{Preset, RecSpec, Recommender};
use nn_recommend::rank::{cosine_similarities, top_n};
use nn_recommend::train::{fit, TrainConfig};
use nn_recommend::{IdMap, Interaction};
use nn_serve::recommend::{serve, RecommendService};
use nn_serve::ServeConfig;
use tokio::sync::oneshot;

mod common;
use common::send;

/// 20 users × 12 items in two groups (users 0–9 like items 0–5 and rate them 5,
/// the others 1; users 10–19 the reverse), each user rating 8 items.
fn trained() -> Recommender {
    let users = IdMap::from_ids((0..20).map(|u| format!("u{u}")).collect()).unwrap();
    let items = IdMap::from_ids((0..12).map(|i| format!("m{i}")).collect()).unwrap();
    let mut train = Vec::new();
    for u in 0..20usize {
        for k in 0..8usize {
            let i = (u * 5 + k * 7) % 12;
            if train.iter().any(|r: &Interaction| r.user == u && r.item == i) {
                continue;
            }
            let liked = (u < 10) == (i < 6);
            train.push(Interaction { user: u, item: i, value: if liked { 5.0 } else { 1.0 }, timestamp: None });
        }
    }
    let spec = RecSpec::preset(Preset::Mf, 4, &[], None).unwrap();
    let mut model = Recommender::new(spec, users, items, None, 3).unwrap();
    let cfg =
        TrainConfig { epochs: 40, batch_size: 16, learning_rate: 0.03, l2: 1e-3, patience: None, ..Default::default() };
    fit(&mut model, &train, None, &cfg, |_| true).unwrap();
    model
}

#[tokio::test]
async fn recommend_and_similar_answer_the_models_top_n_and_bad_requests_are_typed_errors() {
    let model = trained();
    let want_user: Vec<(usize, f32)> = {
        let u = model.users().get("u0").unwrap();
        top_n(&model.score_all_items(Some(u)).unwrap(), 3, model.training_items(u))
    };
    let want_fallback = top_n(&model.score_all_items(None).unwrap(), 2, &[]);
    let (vectors, dim) = model.item_vectors().unwrap();
    let want_similar = top_n(&cosine_similarities(&vectors, dim, 1), 4, &[1]);
    let ids: Vec<String> = model.items().ids().to_vec();

    let listener = nn_serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(RecommendService::new(model), ServeConfig::default(), listener, async move {
        let _ = stopped.await;
    }));

    let a = send(addr, "POST", "/v1/recommend", r#"{"user": "u0", "top": 3}"#).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let body = a.json();
    assert_eq!(body["known_user"], true);
    let got: Vec<(String, f32)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["item"].as_str().unwrap().to_string(), r["score"].as_f64().unwrap() as f32))
        .collect();
    let want: Vec<(String, f32)> = want_user.iter().map(|&(i, s)| (ids[i].clone(), s)).collect();
    assert_eq!(got, want);
    assert_eq!(body["items"][0]["rank"], 1);

    // Ids as JSON integers mean the same as strings.
    let a = send(addr, "POST", "/v1/similar", r#"{"item": 1, "top": 4}"#).await;
    assert_eq!(a.status, 422, "{}", a.text());
    assert!(a.json()["error"].as_str().unwrap().contains("item \"1\" is not in the model"), "{}", a.text());

    // An unknown user: the fallback ranking, not an error.
    let a = send(addr, "POST", "/v1/recommend", r#"{"user": "stranger", "top": 2}"#).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["known_user"], false);
    let got: Vec<String> =
        a.json()["items"].as_array().unwrap().iter().map(|r| r["item"].as_str().unwrap().into()).collect();
    assert_eq!(got, want_fallback.iter().map(|&(i, _)| ids[i].clone()).collect::<Vec<_>>());

    let a = send(addr, "POST", "/v1/similar", r#"{"item": "m1", "top": 4}"#).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let got: Vec<String> =
        a.json()["items"].as_array().unwrap().iter().map(|r| r["item"].as_str().unwrap().into()).collect();
    assert_eq!(got, want_similar.iter().map(|&(i, _)| ids[i].clone()).collect::<Vec<_>>());

    // Errors.
    let a = send(addr, "POST", "/v1/recommend", r#"{"user": "u0", "top": 0}"#).await;
    assert_eq!(
        (a.status, a.json()["kind"].as_str(), a.json()["column"].as_str()),
        (422, Some("bad_value"), Some("top"))
    );
    let a = send(addr, "POST", "/v1/recommend", r#"{"usr": "u0"}"#).await;
    assert_eq!(a.status, 400);
    assert!(a.json()["error"].as_str().unwrap().contains("unknown field `usr`"), "{}", a.text());
    let a = send(addr, "POST", "/v1/recommend", "not json").await;
    assert_eq!((a.status, a.json()["kind"].as_str()), (400, Some("bad_json")));
    let a = send(addr, "POST", "/v1/similar", r#"{"item": "m99"}"#).await;
    assert_eq!(a.status, 422);
    assert!(a.json()["error"].as_str().unwrap().contains("item \"m99\" is not in the model (12 items)"));
    let a = send(addr, "GET", "/v1/recommend", "").await;
    assert_eq!(a.status, 405);
    let a = send(addr, "POST", "/v1/predict", "{}").await;
    assert_eq!(a.status, 404);
    assert!(a.json()["error"].as_str().unwrap().contains("POST /v1/recommend"));
    let a = send(addr, "GET", "/v1/model", "").await;
    assert_eq!((a.json()["users"].as_u64(), a.json()["items"].as_u64()), (Some(20), Some(12)));

    let _ = stop.send(());
    let report = task.await.unwrap().unwrap();
    assert_eq!(report.closed_unfinished, 0);
}
