//! Mean imputation (`Scaler::Impute`) and the other scalers on features holding `NaN`
//! (missing values), with hand-computed statistics.

use nn_data::scale::apply_all;
use nn_data::{Batcher, DataError, Dataset, Granularity, Scaler, Targets};
use nn_tensor::Tensor;

const NAN: f32 = f32::NAN;

fn table(rows: &[[f32; 3]]) -> Dataset {
    let x = Tensor::from_vec(&[rows.len(), 3], rows.iter().flatten().copied().collect());
    Dataset::from_tensor("t", x, Targets::classes(vec![0; rows.len()], 1).unwrap()).unwrap()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn impute_means_by_hand() {
    // Feature 0: 1, 2, missing, 5 → mean 8/3. Feature 1: missing, 0.1, 0.2, missing →
    // mean 0.15 (of the f32 values, in f64). Feature 2: never present → 0.
    let train = table(&[[1.0, NAN, NAN], [2.0, 0.1, NAN], [NAN, 0.2, NAN], [5.0, NAN, NAN]]);
    let s = Scaler::fit_impute_mean(&train).unwrap();
    let expected_1 = (f64::from(0.1f32) + f64::from(0.2f32)) / 2.0;
    assert_eq!(s, Scaler::Impute { values: vec![8.0 / 3.0, expected_1, 0.0] });
    assert_eq!(s.num_stats(), 3);

    let out = train.clone().with_scaler(s.clone()).unwrap().features().to_vec();
    let m0 = (8.0f64 / 3.0) as f32;
    let m1 = expected_1 as f32;
    #[rustfmt::skip]
    let expected = [
        1.0, m1,   0.0,
        2.0, 0.1,  0.0,
        m0,  0.2,  0.0,
        5.0, m1,   0.0,
    ];
    assert_eq!(bits(&out), bits(&expected));
    // Present values pass through bit for bit, including ones f64 would not round-trip
    // through arithmetic: subnormals, −0, the extremes.
    let odd = [f32::MIN_POSITIVE / 3.0, -0.0, f32::MAX, f32::MIN];
    let t = Tensor::from_vec(&[4, 1], odd.to_vec());
    let one = Scaler::Impute { values: vec![7.0] };
    assert_eq!(bits(&one.apply(&t).unwrap().to_vec()), bits(&odd));
    // Serde: tagged "impute".
    let json = serde_json::to_string(&one).unwrap();
    assert_eq!(json, r#"{"kind":"impute","values":[7.0]}"#);
    assert_eq!(serde_json::from_str::<Scaler>(&json).unwrap(), one);
}

#[test]
fn impute_first_then_standard_gives_finite_batches() {
    // Feature 0: 0, missing, 4 → imputed 2; then standardized over 0, 2, 4: mean 2,
    // population std sqrt(8/3).
    let train = table(&[[0.0, 1.0, 1.0], [NAN, 1.0, 2.0], [4.0, 1.0, 3.0]]);
    let impute = Scaler::fit_impute_mean(&train).unwrap();
    let train = train.with_scaler(impute.clone()).unwrap();
    let standard = Scaler::fit_standard(&train, Granularity::PerFeature).unwrap();
    assert_eq!(
        standard,
        Scaler::Standard { mean: vec![2.0, 1.0, 2.0], std: vec![(8.0f64 / 3.0).sqrt(), 1.0, (2.0f64 / 3.0).sqrt()] }
    );
    let train = train.with_scaler(standard.clone()).unwrap();
    let z = (2.0 / (8.0f64 / 3.0).sqrt()) as f32;
    let w = (1.0 / (2.0f64 / 3.0).sqrt()) as f32;
    assert_eq!(train.features().to_vec(), [-z, 0.0, -w, 0.0, 0.0, 0.0, z, 0.0, w]);
    for batch in Batcher::new(2).unwrap().shuffled(3).batches(&train, 0) {
        assert!(batch.features.to_vec().iter().all(|v| v.is_finite()));
    }
    // A new row with a missing value: the same chain applied to a tensor.
    let new = Tensor::from_vec(&[1, 3], vec![NAN, 1.0, NAN]);
    assert_eq!(apply_all(&[impute, standard], &new).unwrap().to_vec(), [0.0, 0.0, 0.0]);
}

#[test]
fn other_fits_need_the_imputer_first() {
    // Raw features with a missing value: the dataset holds them, the other fits
    // refuse them with a hint, applying a scaler keeps NaN as NaN.
    let data = table(&[[1.0, NAN, 5.0], [3.0, 2.0, 5.0]]);
    for e in [
        Scaler::fit_standard(&data, Granularity::PerFeature).unwrap_err(),
        Scaler::fit_min_max(&data, Granularity::PerFeature, 0.0, 1.0).unwrap_err(),
    ] {
        assert!(
            e.to_string()
                .ends_with("non-finite value NaN in sample 0 of \"t\" (a missing value: add the mean imputer first)"),
            "{e}"
        );
    }
    let s = Scaler::Standard { mean: vec![2.0, 2.0, 5.0], std: vec![1.0, 1.0, 1.0] };
    let out = data.clone().with_scaler(s).unwrap().features().to_vec();
    assert_eq!(bits(&out), bits(&[-1.0, NAN, 0.0, 1.0, 0.0, 0.0]));
    // With the imputer first, min-max sees 1, 3 / 2, 2 / 5, 5.
    let data = data.clone().with_scaler(Scaler::fit_impute_mean(&data).unwrap()).unwrap();
    let m = Scaler::fit_min_max(&data, Granularity::PerFeature, 0.0, 1.0).unwrap();
    assert_eq!(m, Scaler::MinMax { min: vec![1.0, 2.0, 5.0], max: vec![3.0, 2.0, 5.0], low: 0.0, high: 1.0 });
    assert_eq!(data.with_scaler(m).unwrap().features().to_vec(), [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn infinities_and_bad_imputers_are_refused() {
    let data = table(&[[1.0, f32::INFINITY, 0.0]]);
    for e in [
        Scaler::fit_impute_mean(&data).unwrap_err(),
        Scaler::fit_standard(&data, Granularity::PerFeature).unwrap_err(),
        Scaler::fit_min_max(&data, Granularity::PerFeature, 0.0, 1.0).unwrap_err(),
    ] {
        assert!(
            matches!(&e, DataError::InvalidArgument { message, .. } if message.contains("non-finite value inf")),
            "{e:?}"
        );
    }
    let empty =
        Dataset::from_tensor("e", Tensor::from_vec(&[0, 3], vec![]), Targets::classes(vec![], 1).unwrap()).unwrap();
    assert!(Scaler::fit_impute_mean(&empty).is_err());
    assert!(Scaler::Impute { values: vec![] }.check(&[3]).is_err());
    assert!(Scaler::Impute { values: vec![f64::NAN, 0.0, 0.0] }.check(&[3]).is_err());
    assert!(Scaler::Impute { values: vec![1.0, 2.0] }.check(&[3]).is_err());
    assert!(Scaler::Impute { values: vec![1.0, 2.0, 3.0] }.check(&[3]).is_ok());
}
