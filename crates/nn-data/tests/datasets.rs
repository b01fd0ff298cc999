//! The embedded digits, the Dataset container, and (with `NN_DATA_DIR`) real MNIST.

use std::path::PathBuf;

use nn_data::digits::{self, Layout};
use nn_data::{mnist, Batcher, DataError, Dataset, Granularity, Scaler, Targets};
use nn_tensor::Tensor;

#[test]
fn embedded_digits() {
    let d = digits::load();
    assert_eq!(d.name(), "digits");
    assert_eq!(d.len(), 1797);
    assert_eq!(d.shape(), vec![1797, 8, 8, 1]);
    assert_eq!(d.class_names().unwrap(), ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    // Class counts of the file (`zcat digits.csv.gz | cut -d, -f65 | sort | uniq -c`).
    assert_eq!(d.targets().class_counts().unwrap(), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    // First row of the file: a zero.
    let first = [
        0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0, 0, 5,
        8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0,
    ];
    assert_eq!(&d.raw_bytes().unwrap()[..64], first);
    assert_eq!(d.targets().labels().unwrap()[..3], [0, 1, 2]);
    assert!(d.raw_bytes().unwrap().iter().all(|&v| v <= 16));
    assert_eq!(d.raw_bytes().unwrap().iter().max(), Some(&16));

    let flat = digits::load_as(Layout::Flat, true);
    assert_eq!(flat.sample_shape(), &[64]);
    let x = flat.batch_features(&[0]).unwrap().to_vec();
    assert_eq!(x, first.iter().map(|&v| v as f32 / 16.0).collect::<Vec<_>>());
    let all = flat.features().to_vec();
    assert!(all.iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert_eq!(all.iter().cloned().fold(0.0f32, f32::max), 1.0);
}

#[test]
#[ignore = "needs the shared digits file: set NN_DATA_DIR"]
fn embedded_digits_match_the_shared_file() {
    let dir = PathBuf::from(std::env::var_os("NN_DATA_DIR").expect("NN_DATA_DIR"));
    let shared = std::fs::read(dir.join("digits/digits.csv.gz")).unwrap();
    assert_eq!(digits::CSV_GZ, shared.as_slice());
}

#[test]
fn dataset_construction_checks() {
    let y = Targets::classes(vec![0, 1], 2).unwrap();
    let e = Dataset::from_bytes("x", vec![1, 2, 3], &[2, 2], y.clone()).unwrap_err();
    assert!(e.to_string().contains("shape [2, 2] does not hold 3 elements"), "{e}");
    let e = Dataset::from_tensor("x", Tensor::zeros(&[3, 2]), y.clone()).unwrap_err();
    assert!(e.to_string().contains("3 samples of features but 2 targets"), "{e}");
    assert!(Dataset::from_tensor("x", Tensor::scalar(1.0), y.clone()).is_err());
    let d = Dataset::from_tensor("x", Tensor::from_vec(&[2, 2], vec![1., 2., 3., 4.]), y).unwrap();
    assert!(d.clone().with_class_names(vec!["a".into()]).is_err());
    let d = d.with_class_names(vec!["a".into(), "b".into()]).unwrap();
    assert!(d.batch_features(&[2]).is_err());
    assert!(d.subset(&[0, 5]).is_err());
    // Subsets may repeat samples and keep names and class count.
    let s = d.subset(&[1, 1]).unwrap();
    assert_eq!(s.features().to_vec(), vec![3., 4., 3., 4.]);
    assert_eq!(s.targets(), &Targets::Classes { labels: vec![1, 1], num_classes: 2 });
    assert_eq!(s.class_names().unwrap(), ["a", "b"]);
    assert!(d.clone().reshape_samples(&[3]).is_err());
    assert_eq!(d.clone().reshape_samples(&[1, 2]).unwrap().shape(), vec![2, 1, 2]);
    // Non-contiguous tensors are stored in logical order.
    let t = Tensor::from_vec(&[2, 2], vec![1., 2., 3., 4.]).permute(&[1, 0]);
    let p = Dataset::from_tensor("p", t, Targets::classes(vec![0, 0], 1).unwrap()).unwrap();
    assert_eq!(p.features().to_vec(), vec![1., 3., 2., 4.]);
    // Real targets: [N] and [N, k] only.
    assert!(Targets::real(Tensor::zeros(&[2, 1, 1])).is_err());
    let r = Targets::real(Tensor::from_vec(&[2, 2], vec![1., 2., 3., 4.])).unwrap();
    assert_eq!(r.select(&[1]).unwrap().values().unwrap().to_vec(), vec![3., 4.]);
    assert!(d.clone().with_name("renamed").name() == "renamed");
}

fn mnist_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("NN_DATA_DIR").expect("set NN_DATA_DIR")).join("mnist")
}

#[test]
#[ignore = "needs MNIST: set NN_DATA_DIR"]
fn real_mnist_counts() {
    let m = mnist::load_mnist(mnist_dir()).unwrap();
    assert_eq!(m.train.shape(), vec![60_000, 28, 28, 1]);
    assert_eq!(m.test.shape(), vec![10_000, 28, 28, 1]);
    let train = m.train.targets().class_counts().unwrap();
    let test = m.test.targets().class_counts().unwrap();
    assert_eq!((train[0], train[1]), (5_923, 6_742));
    assert_eq!((test[0], test[1]), (980, 1_135));
    assert_eq!(train.iter().sum::<usize>(), 60_000);
    // The first training digit is a 5, the first test digit a 7.
    assert_eq!(m.train.targets().labels().unwrap()[0], 5);
    assert_eq!(m.test.targets().labels().unwrap()[0], 7);
}

#[test]
#[ignore = "needs MNIST: set NN_DATA_DIR"]
fn real_mnist_scaled_statistics_and_batches() {
    let m = mnist::load_mnist(mnist_dir()).unwrap();
    let train = m.train.scale_by(1.0 / 255.0).unwrap();
    // The widely used normalisation constants of MNIST's training pixels in [0, 1]:
    // mean 0.1307, standard deviation 0.3081.
    let Scaler::Standard { mean, std } = Scaler::fit_standard(&train, Granularity::PerChannel).unwrap() else {
        unreachable!()
    };
    assert!((mean[0] - 0.1307).abs() < 5e-5, "{mean:?}");
    assert!((std[0] - 0.3081).abs() < 5e-5, "{std:?}");

    let (tr, val) = train.split_validation(0.2).unwrap();
    assert_eq!((tr.len(), val.len()), (48_000, 12_000));
    let batcher = Batcher::new(128).unwrap().shuffled(1);
    assert_eq!(batcher.num_batches(tr.len()), 375);
    let first = batcher.batches(&tr, 0).next().unwrap();
    assert_eq!(first.features.shape(), &[128, 28, 28, 1]);
    let v = first.features.to_vec();
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    assert_eq!(v.iter().cloned().fold(0.0f32, f32::max), 1.0);
}

#[test]
fn missing_mnist_dir_is_an_error() {
    let e = mnist::load_mnist("/definitely/not/here").unwrap_err();
    assert!(matches!(e, DataError::MissingFile { .. }));
    assert!(e.to_string().starts_with("/definitely/not/here: none of train-images-idx3-ubyte, "), "{e}");
}
