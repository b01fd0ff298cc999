//! The Recommender: presets, the spec's checks, predictions against their formula,
//! the fallbacks for unknown users and unseen items, the fast scoring path, and
//! save/load.

use nn_recommend::data::{IdMap, Interaction, ItemFeature, ItemFeatureSpec, ItemTable};
use nn_recommend::model::{Lookup, OutputKind, Preset, RecSpec, Recommender};
use nn_recommend::train::{fit, TrainConfig};
use nn_recommend::RecError;

fn ids(prefix: &str, n: usize) -> IdMap {
    let mut m = IdMap::new();
    for k in 0..n {
        m.insert(&format!("{prefix}{k}"));
    }
    m
}

/// 4 users, 6 items; item 5 never rated (a cold item).
fn data() -> Vec<Interaction> {
    let rows = [
        (0, 0, 5.0),
        (0, 1, 3.0),
        (0, 2, 4.0),
        (1, 0, 4.0),
        (1, 3, 1.0),
        (1, 4, 2.0),
        (2, 1, 2.5),
        (2, 2, 4.5),
        (2, 3, 1.5),
        (3, 0, 3.5),
        (3, 4, 2.0),
        (3, 2, 5.0),
    ];
    rows.iter().map(|&(user, item, value)| Interaction { user, item, value, timestamp: None }).collect()
}

fn item_table(n: usize) -> ItemTable {
    let spec = ItemFeatureSpec {
        id_column: "movieId".into(),
        separator: '|',
        columns: vec![
            ItemFeature::MultiValued { column: "genres".into(), values: vec!["Comedy".into(), "Drama".into()] },
            ItemFeature::Numeric { column: "year".into(), mean: 2000.0, std: 10.0 },
        ],
        ignored: vec![],
    };
    let features = (0..n).flat_map(|i| [(i % 2) as f32, ((i + 1) % 2) as f32, i as f32 * 0.3 - 0.5]).collect();
    ItemTable { spec, features, has_features: vec![true; n], titles: vec![None; n] }
}

fn trained(preset: Preset, output: OutputKind) -> Recommender {
    let features = (preset == Preset::TwoTower).then_some(3);
    let mut spec = RecSpec::preset(preset, 4, &[8], features).unwrap();
    spec.output = output;
    let table = features.map(|_| item_table(6));
    let mut rec = Recommender::new(spec, ids("u", 4), ids("i", 6), table, 7).unwrap();
    let cfg = TrainConfig { epochs: 3, batch_size: 4, learning_rate: 0.05, patience: None, ..TrainConfig::default() };
    fit(&mut rec, &data(), None, &cfg, |_| true).unwrap();
    rec
}

#[test]
fn preset_names_round_trip() {
    for (p, s) in [(Preset::Mf, "mf"), (Preset::Ncf, "ncf"), (Preset::TwoTower, "two-tower")] {
        assert_eq!(p.to_string(), s);
        assert_eq!(s.parse::<Preset>().unwrap(), p);
    }
    let e = "svd".parse::<Preset>().unwrap_err();
    assert!(e.to_string().contains("unknown model \"svd\""), "{e}");
}

#[test]
fn specs_round_trip_through_json() {
    for p in [Preset::Mf, Preset::Ncf, Preset::TwoTower] {
        let spec = RecSpec::preset(p, 8, &[16, 8], Some(5)).unwrap();
        assert_eq!(RecSpec::from_json(&spec.to_json()).unwrap(), spec);
    }
    let spec = RecSpec::preset(Preset::TwoTower, 8, &[], None).unwrap();
    assert!(spec.uses_history());
    assert!(!spec.inputs.iter().any(|b| b.lookup == Lookup::ItemFeatures));
    assert!(RecSpec::preset(Preset::Mf, 0, &[], None).is_err());
    assert!(RecSpec::from_json("{\"tables\": []}").is_err());
}

#[test]
fn inconsistent_specs_are_refused() {
    let build = |spec: RecSpec, table: Option<ItemTable>| Recommender::new(spec, ids("u", 3), ids("i", 6), table, 0);
    let mut spec = RecSpec::preset(Preset::Mf, 4, &[], None).unwrap();
    spec.inputs[1].table = Some("nope".into());
    let e = build(spec, None).unwrap_err();
    assert!(matches!(e, RecError::Config(_)) && e.to_string().contains("unknown table \"nope\""), "{e}");
    let mut spec = RecSpec::preset(Preset::Mf, 4, &[], None).unwrap();
    spec.inputs[1].table = Some("user".into());
    let e = build(spec, None).unwrap_err();
    assert!(e.to_string().contains("needs a table of Items"), "{e}");
    let mut spec = RecSpec::preset(Preset::Mf, 4, &[], None).unwrap();
    spec.tables[1].dim = 5;
    let e = build(spec, None).unwrap_err();
    assert!(e.to_string().contains("receives rows of width 5"), "{e}");
    let spec = RecSpec::preset(Preset::TwoTower, 4, &[], Some(3)).unwrap();
    let e = build(spec.clone(), None).unwrap_err();
    assert!(e.to_string().contains("no items file"), "{e}");
    let e = build(spec, Some(item_table(5))).unwrap_err();
    assert!(e.to_string().contains("the model 6 items"), "{e}");
    let mut spec = RecSpec::preset(Preset::Mf, 4, &[], None).unwrap();
    spec.inputs.pop();
    let e = build(spec, None).unwrap_err();
    assert!(e.to_string().contains("dense input \"item\" has no binding"), "{e}");
}

#[test]
fn mf_predicts_mu_plus_biases_plus_dot() {
    let rec = trained(Preset::Mf, OutputKind::Rating);
    let mu = data().iter().map(|x| x.value as f64).sum::<f64>() / 12.0;
    assert!((rec.global_bias() as f64 - mu).abs() < 1e-6);
    assert_eq!(rec.rating_range(), Some((1.0, 5.0)));
    let (p, q) = (&rec.tables()[0], &rec.tables()[1]);
    let pairs: Vec<(Option<usize>, usize)> = (0..4).flat_map(|u| (0..6).map(move |i| (Some(u), i))).collect();
    let got = rec.predict(&pairs).unwrap();
    for (&(u, i), &g) in pairs.iter().zip(&got) {
        let u = u.unwrap();
        let dot: f32 = if i < 5 { p.row(u).iter().zip(q.row(i)).map(|(a, b)| a * b).sum() } else { 0.0 };
        let want = (rec.global_bias() + rec.user_bias(u) + rec.item_bias(i) + dot).clamp(1.0, 5.0);
        assert!((g - want).abs() < 1e-5, "({u}, {i}): {g} vs {want}");
    }
    // Training moved the biases; the cold item 5 has none and no embedding.
    assert!(rec.user_bias(0) != 0.0 && rec.item_bias(0) != 0.0);
    assert_eq!(rec.item_bias(5), 0.0);
    assert!(!rec.is_seen_item(5) && rec.is_seen_item(4));
    let cold = rec.predict(&[(Some(1), 5)]).unwrap()[0];
    assert!((cold - (rec.global_bias() + rec.user_bias(1))).abs() < 1e-6);
}

#[test]
fn unknown_users_fall_back_to_mu_plus_item_bias() {
    for preset in [Preset::Mf, Preset::Ncf] {
        let rec = trained(preset, OutputKind::Rating);
        let got = rec.predict(&[(None, 0), (None, 3), (None, 5)]).unwrap();
        for (g, i) in got.iter().zip([0, 3, 5]) {
            let want = rec.global_bias() + rec.item_bias(i);
            assert!((g - want).abs() < 1e-6, "{preset} item {i}: {g} vs {want}");
        }
        let all = rec.score_all_items(None).unwrap();
        assert!((all[3] - got[1]).abs() < 1e-6);
    }
    // Two-tower runs its user tower on zeros: not the fallback, but finite.
    let rec = trained(Preset::TwoTower, OutputKind::Rating);
    let got = rec.predict(&[(None, 0), (None, 5)]).unwrap();
    assert!(got.iter().all(|v| v.is_finite() && (1.0..=5.0).contains(v)), "{got:?}");
}

#[test]
fn score_all_items_matches_predict() {
    for preset in [Preset::Mf, Preset::Ncf, Preset::TwoTower] {
        let rec = trained(preset, OutputKind::Score);
        for user in [Some(0), Some(2), None] {
            let all = rec.score_all_items(user).unwrap();
            assert_eq!(all.len(), 6);
            let pairs: Vec<_> = (0..6).map(|i| (user, i)).collect();
            let want = rec.predict(&pairs).unwrap();
            for (i, (a, b)) in all.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-5, "{preset} {user:?} item {i}: {a} vs {b}");
            }
        }
        let (v, d) = rec.item_vectors().unwrap();
        let want_d = match preset {
            Preset::Mf | Preset::TwoTower => 4,
            Preset::Ncf => 8,
        };
        assert_eq!((v.len(), d), (6 * want_d, want_d), "{preset}");
        if preset == Preset::Mf {
            assert_eq!(&v[4..8], rec.tables()[1].row(1));
            assert!(v[20..24].iter().all(|&x| x == 0.0), "the cold item's vector is zero");
        }
        if preset == Preset::TwoTower {
            // The cold item's features reach the item tower.
            assert!(v[20..24].iter().any(|&x| x != 0.0));
        }
    }
}

#[test]
fn save_and_load_give_identical_predictions() {
    let dir = tempfile::tempdir().unwrap();
    for preset in [Preset::Mf, Preset::Ncf, Preset::TwoTower] {
        let rec = trained(preset, OutputKind::Rating);
        let path = dir.path().join(preset.to_string());
        rec.save(&path).unwrap();
        let back = Recommender::load(&path).unwrap();
        let pairs: Vec<_> = (0..4).flat_map(|u| (0..6).map(move |i| (Some(u), i))).chain([(None, 1)]).collect();
        let (a, b) = (rec.predict(&pairs).unwrap(), back.predict(&pairs).unwrap());
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{preset}");
        assert_eq!(back.spec(), rec.spec());
        assert_eq!(back.items(), rec.items());
        assert_eq!(back.item_table(), rec.item_table());
    }
}

#[test]
fn load_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let rec = trained(Preset::Mf, OutputKind::Rating);
    rec.save(dir.path()).unwrap();
    // A weights file of another model (different embedding size).
    let other = tempfile::tempdir().unwrap();
    let spec = RecSpec::preset(Preset::Mf, 3, &[], None).unwrap();
    Recommender::new(spec, ids("u", 4), ids("i", 6), None, 0).unwrap().save(other.path()).unwrap();
    std::fs::copy(other.path().join("weights.safetensors"), dir.path().join("weights.safetensors")).unwrap();
    let e = Recommender::load(dir.path()).unwrap_err();
    assert!(matches!(e, RecError::Format { .. }), "{e}");
    assert!(e.to_string().contains("table.user") && e.to_string().contains("expected [4, 4]"), "{e}");
    // Truncated weights.
    let bytes = std::fs::read(other.path().join("weights.safetensors")).unwrap();
    std::fs::write(dir.path().join("weights.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(Recommender::load(dir.path()).unwrap_err(), RecError::Format { .. }));
    // Malformed JSON, missing directory.
    std::fs::write(dir.path().join("recommender.json"), "{").unwrap();
    let e = Recommender::load(dir.path()).unwrap_err();
    assert!(matches!(&e, RecError::Format { path, .. } if path.ends_with("recommender.json")), "{e}");
    assert!(matches!(Recommender::load(&dir.path().join("nope")).unwrap_err(), RecError::Io { .. }));
}
