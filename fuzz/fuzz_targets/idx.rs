//! The IDX reader on arbitrary bytes: it must return `Ok` or `Err`, never panic,
//! and whatever it accepts must re-encode to an IDX file that decodes the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nn_data::idx::parse_idx;

fuzz_target!(|data: &[u8]| {
    if let Ok(array) = parse_idx(data, "fuzz-input") {
        let count: usize = array.dims().iter().product();
        assert_eq!(count, array.data().len());
        let bytes = array.to_bytes();
        let again = parse_idx(&bytes, "re-encoded").expect("a re-encoded IDX file must decode");
        assert_eq!(again.dims(), array.dims());
        // Compare encodings, not values: NaN payloads compare unequal as floats.
        assert_eq!(again.to_bytes(), bytes);
        let _ = array.to_f32_tensor();
    }
});
