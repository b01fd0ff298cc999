//! Shapes too large to exist are errors naming the shape, never panics ("capacity
//! overflow") or wrapped-around element counts.

use nn_tensor::shape::{checked_numel, checked_numel_of};
use nn_tensor::{Tensor, TensorError};

const BIG: usize = 1 << 62; // 4611686018427387904
const WRAP: usize = 1 << 32; // 4294967296: WRAP · WRAP wraps usize to 0

fn overflow_message<T: std::fmt::Debug>(r: Result<T, TensorError>) -> String {
    match r {
        Err(e @ TensorError::Overflow { .. }) => e.to_string(),
        other => panic!("expected an Overflow error, got {other:?}"),
    }
}

#[test]
fn constructors_refuse_shapes_over_isize_max_bytes() {
    // 2^62 f32 elements is 2^64 bytes: ndarray would panic with "capacity overflow".
    let m = overflow_message(Tensor::<f32>::try_full(&[BIG], 0.0));
    assert_eq!(
        m,
        "full: shape [4611686018427387904] is too large: its element count overflows usize or its size exceeds \
         isize::MAX (9223372036854775807) bytes"
    );
    let m = overflow_message(Tensor::<f64>::try_zeros(&[5, BIG]));
    assert!(m.starts_with("zeros: shape [5, 4611686018427387904]"), "{m}");
    let m = overflow_message(Tensor::<f32>::try_ones(&[WRAP, WRAP]));
    assert!(m.starts_with("ones: shape [4294967296, 4294967296]"), "{m}");
    let m = overflow_message(Tensor::<f32>::try_from_vec(&[WRAP, WRAP], vec![]));
    assert!(m.starts_with("from_vec: shape [4294967296, 4294967296]"), "{m}");
    let m = overflow_message(Tensor::<f32>::from_f64_slice(&[BIG, 2], &[]));
    assert!(m.starts_with("from_vec: shape [4611686018427387904, 2]"), "{m}");
    // Half the address space of f64 is still too much; a quarter of it as f32 too.
    assert!(Tensor::<f64>::try_full(&[isize::MAX as usize / 8 + 1], 0.0).is_err());
    assert!(Tensor::<f32>::try_full(&[isize::MAX as usize / 4 + 1], 0.0).is_err());
}

#[test]
fn reshape_and_joins_check_their_output_shape() {
    let t = Tensor::<f32>::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]);
    let m = overflow_message(t.try_reshape(&[WRAP, WRAP, 6]));
    assert!(m.starts_with("reshape: shape [4294967296, 4294967296, 6]"), "{m}");
    // A wrapped product of 0 would have matched an empty tensor's count.
    let empty = Tensor::<f32>::zeros(&[0, 3]);
    assert!(matches!(empty.try_reshape(&[WRAP, WRAP]), Err(TensorError::Overflow { .. })));
    // Empty tensors exist at any size, so joining them is where the output shape
    // can pass ndarray's limit on the non-zero dimensions.
    let e = Tensor::<f32>::zeros(&[0, BIG]);
    assert_eq!(Tensor::concat(0, &[&e, &e]).shape(), &[0, BIG]);
    let m = overflow_message(Tensor::try_concat(1, &[&e, &e]));
    assert!(m.starts_with("concat: shape [0, 9223372036854775808]"), "{m}");
    let m = overflow_message(Tensor::try_stack(0, &[&e, &e]));
    assert!(m.starts_with("stack: shape [2, 0, 4611686018427387904]"), "{m}");
    assert_eq!(e.gather_rows(&[]).shape(), &[0, BIG]);
}

#[test]
fn empty_tensors_keep_working() {
    let e = Tensor::<f32>::try_full(&[0, BIG], 1.0).unwrap();
    assert_eq!(e.shape(), &[0, BIG]);
    assert_eq!(e.len(), 0);
    assert_eq!(Tensor::<f64>::try_zeros(&[3, 0]).unwrap().shape(), &[3, 0]);
    assert_eq!(Tensor::<f32>::try_from_vec(&[0], vec![]).unwrap().len(), 0);
    assert_eq!(Tensor::<f32>::try_zeros(&[]).unwrap().to_vec(), vec![0.0]);
    // ndarray's own limit still holds for the non-zero dimensions of an empty shape.
    assert!(Tensor::<f32>::try_full(&[0, BIG, 4], 1.0).is_err());
}

#[test]
fn one_function_decides() {
    assert_eq!(checked_numel_of("t", &[BIG], 1).unwrap(), BIG);
    assert!(checked_numel_of("t", &[BIG], 2).is_err());
    assert!(checked_numel("t", &[BIG]).is_err());
    assert_eq!(checked_numel("t", &[1 << 20, 1 << 20]).unwrap(), 1 << 40);
}
