//! Scalers: hand-computed values, fitting on the training part only, serde, and the
//! lazy (byte-stored) path giving the same bits as the eager one.

use nn_data::scale::apply_all;
use nn_data::{DataError, Dataset, Granularity, Scaler, Targets};
use nn_tensor::Tensor;
use proptest::prelude::*;

fn table(rows: &[[f32; 2]]) -> Dataset {
    let x = Tensor::from_vec(&[rows.len(), 2], rows.iter().flatten().copied().collect());
    let y = Targets::classes(vec![0; rows.len()], 1).unwrap();
    Dataset::from_tensor("t", x, y).unwrap()
}

#[test]
fn constant_rescales_bytes_exactly_like_keras() {
    // Keras: x.astype("float32") / 255. Our Constant computes x · (1/255) in f64 and
    // rounds once; for every byte value that equals the f32 division.
    let bytes: Vec<u8> = (0..=255).collect();
    let d = Dataset::from_bytes("b", bytes, &[256, 1], Targets::classes(vec![0; 256], 1).unwrap())
        .unwrap()
        .scale_by(1.0 / 255.0)
        .unwrap();
    let got = d.features().to_vec();
    for (b, v) in got.iter().enumerate() {
        assert_eq!(v.to_bits(), (b as f32 / 255.0f32).to_bits(), "byte {b}");
    }
    // The stored bytes are untouched: scaling is applied per batch.
    assert_eq!(d.raw_bytes().unwrap()[255], 255);
    let s = Scaler::constant(2.0, -1.0).unwrap();
    assert_eq!(s.apply(&Tensor::from_vec(&[2, 1], vec![0.0, 0.5])).unwrap().to_vec(), vec![-1.0, 0.0]);
    assert!(Scaler::constant(f64::NAN, 0.0).is_err());
}

#[test]
fn min_max_by_hand() {
    let train = table(&[[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]]);
    let s = Scaler::fit_min_max(&train, Granularity::PerFeature, -1.0, 1.0).unwrap();
    assert_eq!(s, Scaler::MinMax { min: vec![1.0, 10.0], max: vec![5.0, 10.0], low: -1.0, high: 1.0 });
    // Feature 0: −1 + (x − 1)/4 · 2; feature 1 is constant: range 1 → −1 + (x − 10)·2.
    let y = train.clone().with_scaler(s.clone()).unwrap().features().to_vec();
    assert_eq!(y, vec![-1.0, -1.0, 0.0, -1.0, 1.0, -1.0]);
    let unseen = s.apply(&Tensor::from_vec(&[1, 2], vec![7.0, 10.5])).unwrap().to_vec();
    assert_eq!(unseen, vec![2.0, 0.0]);
    assert!(Scaler::fit_min_max(&train, Granularity::PerFeature, 1.0, 1.0).is_err());
}

#[test]
fn standard_by_hand_and_constant_columns() {
    let train = table(&[[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0]]);
    let s = Scaler::fit_standard(&train, Granularity::PerFeature).unwrap();
    // mean 2.5; population variance (2.25 + 0.25 + 0.25 + 2.25)/4 = 1.25.
    let Scaler::Standard { mean, std } = &s else { panic!("{s:?}") };
    assert_eq!(mean, &vec![2.5, 5.0]);
    assert_eq!(std[0], 1.25f64.sqrt());
    assert_eq!(std[1], 1.0, "a constant column's std of 0 is stored as 1");
    let y = train.with_scaler(s).unwrap().features().to_vec();
    let expect: Vec<f32> =
        [1.0f64, 2.0, 3.0, 4.0].iter().flat_map(|x| [((x - 2.5) / 1.25f64.sqrt()) as f32, 0.0]).collect();
    assert_eq!(y, expect);
    assert!(y.iter().all(|v| v.is_finite()));
}

#[test]
fn fitted_on_the_training_part_only() {
    // 8 samples; the last 2 (validation) are far larger and must not move the stats.
    let data = table(&[[0., 0.], [1., 1.], [2., 2.], [3., 3.], [4., 4.], [5., 5.], [100., 100.], [200., 200.]]);
    let (train, val) = data.split_validation(0.25).unwrap();
    let s = Scaler::fit_standard(&train, Granularity::PerFeature).unwrap();
    let Scaler::Standard { mean, std } = &s else { unreachable!() };
    // Training values 0..=5: mean 2.5, variance Σ(x − 2.5)²/6 = 17.5/6.
    assert_eq!(mean, &vec![2.5, 2.5]);
    assert!((std[0] - (17.5f64 / 6.0).sqrt()).abs() < 1e-15);
    let v = val.with_scaler(s).unwrap().features().to_vec();
    assert_eq!(v[0], ((100.0 - 2.5) / (17.5f64 / 6.0).sqrt()) as f32);
}

#[test]
fn per_channel_statistics() {
    // Two 1×2 images with 2 channels: channel 0 holds 1, 3, 5, 7; channel 1 holds 10 × 4.
    let x = Tensor::from_vec(&[2, 1, 2, 2], vec![1., 10., 3., 10., 5., 10., 7., 10.]);
    let d = Dataset::from_tensor("img", x, Targets::classes(vec![0, 0], 1).unwrap()).unwrap();
    let s = Scaler::fit_min_max(&d, Granularity::PerChannel, 0.0, 1.0).unwrap();
    assert_eq!(s, Scaler::MinMax { min: vec![1.0, 10.0], max: vec![7.0, 10.0], low: 0.0, high: 1.0 });
    let y = d.clone().with_scaler(s).unwrap().features().to_vec();
    assert_eq!(y, vec![0.0, 0.0, 1.0 / 3.0, 0.0, 2.0 / 3.0, 0.0, 1.0, 0.0]);
    let st = Scaler::fit_standard(&d, Granularity::PerChannel).unwrap();
    let Scaler::Standard { mean, std } = &st else { unreachable!() };
    assert_eq!(mean, &vec![4.0, 10.0]);
    assert_eq!(std, &vec![5.0f64.sqrt(), 1.0]); // (9 + 1 + 1 + 9)/4 = 5
                                                // A per-pixel scaler fitted on [1, 2, 2] samples applies to them flattened to [4].
    let pf = Scaler::fit_standard(&d, Granularity::PerFeature).unwrap();
    assert_eq!(pf.num_stats(), 4);
    assert!(d.clone().flatten().with_scaler(pf.clone()).is_ok());
    assert!(matches!(table(&[[1.0, 2.0]]).with_scaler(pf), Err(DataError::InvalidArgument { .. })));
    // Flattening after a per-channel scaler keeps each element's channel statistic.
    let before = d.clone().with_scaler(st.clone()).unwrap();
    let after = before.clone().flatten();
    assert_eq!(after.sample_shape(), &[4]);
    assert_eq!(after.features().to_vec(), before.features().to_vec());
}

#[test]
fn serde_round_trip_applies_identically() {
    let train = table(&[[1.0, -2.0], [3.5, 4.0], [0.25, 8.0]]);
    let scalers = vec![
        Scaler::constant(0.5, 1.0).unwrap(),
        Scaler::fit_standard(&train, Granularity::PerFeature).unwrap(),
        Scaler::fit_min_max(&train, Granularity::PerFeature, 0.0, 1.0).unwrap(),
    ];
    let json = serde_json::to_string(&scalers).unwrap();
    assert!(json.starts_with(r#"[{"kind":"constant","scale":0.5,"offset":1.0},{"kind":"standard","mean":["#), "{json}");
    let back: Vec<Scaler> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, scalers);
    let x = Tensor::from_vec(&[2, 2], vec![0.1, 0.2, 9.0, -7.0]);
    assert_eq!(apply_all(&back, &x).unwrap(), apply_all(&scalers, &x).unwrap());
    // A hand-edited scaler with a zero std is rejected, not divided by.
    let bad: Scaler = serde_json::from_str(r#"{"kind":"standard","mean":[0.0,0.0],"std":[1.0,0.0]}"#).unwrap();
    assert!(bad.check(&[2]).is_err());
    assert!(train.with_scaler(bad).is_err());
}

#[test]
fn fit_errors() {
    let nan = table(&[[1.0, f32::NAN]]);
    let e = Scaler::fit_standard(&nan, Granularity::PerFeature).unwrap_err();
    assert!(e.to_string().contains("non-finite value NaN in sample 0"), "{e}");
    let empty = table(&[]);
    assert!(Scaler::fit_min_max(&empty, Granularity::PerFeature, 0.0, 1.0).is_err());
    assert!(apply_all(&[], &Tensor::scalar(1.0)).is_err());
}

proptest! {
    /// Byte features under constant scalers only are decoded through a 256-entry
    /// table; it must give the bits of applying the steps one after another.
    #[test]
    fn byte_table_matches_step_by_step(bytes in prop::collection::vec(any::<u8>(), 1..64), a in -10.0f64..10.0, b in -3.0f64..3.0) {
        let n = bytes.len();
        let d = Dataset::from_bytes("c", bytes.clone(), &[n, 1], Targets::classes(vec![0; n], 1).unwrap()).unwrap()
            .scale_by(1.0 / 255.0).unwrap()
            .with_scaler(Scaler::constant(a, b).unwrap()).unwrap();
        let raw = Tensor::from_vec(&[n, 1], bytes.iter().map(|&v| v as f32).collect());
        let eager = apply_all(d.scalers(), &raw).unwrap().to_vec();
        let lazy = d.features().to_vec();
        prop_assert_eq!(lazy.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), eager.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        for (v, &x) in lazy.iter().zip(&bytes) {
            prop_assert_eq!(*v, ((((x as f32 as f64) / 255.0) as f32 as f64) * a + b) as f32);
        }
    }

    /// Scaling byte images lazily (per batch) gives the same bits as scaling the
    /// materialised f32 tensor step by step.
    #[test]
    fn lazy_and_eager_agree(bytes in prop::collection::vec(any::<u8>(), 12..=12 * 8), pick in prop::collection::vec(0usize..1000, 1..10)) {
        let n = bytes.len() / 12;
        let bytes = bytes[..n * 12].to_vec();
        let d = Dataset::from_bytes("p", bytes.clone(), &[n, 2, 2, 3], Targets::classes(vec![0; n], 1).unwrap()).unwrap()
            .scale_by(1.0 / 255.0).unwrap();
        let st = Scaler::fit_standard(&d, Granularity::PerChannel).unwrap();
        let d = d.with_scaler(st.clone()).unwrap();
        let idx: Vec<usize> = pick.iter().map(|p| p % n).collect();
        let lazy = d.batch_features(&idx).unwrap();
        let raw = Tensor::from_vec(&[idx.len(), 2, 2, 3], idx.iter().flat_map(|&i| bytes[i * 12..i * 12 + 12].iter().map(|&b| b as f32)).collect());
        let eager = apply_all(d.scalers(), &raw).unwrap();
        prop_assert_eq!(lazy.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>(), eager.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        // Standardised training data has mean ≈ 0 per channel.
        let all = d.features().to_vec();
        for c in 0..3 {
            let vals: Vec<f64> = all.iter().skip(c).step_by(3).map(|&v| v as f64).collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            prop_assert!(mean.abs() < 1e-5, "channel {} mean {}", c, mean);
        }
    }
}
