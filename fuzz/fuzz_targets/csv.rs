//! The CSV reader on arbitrary bytes under options chosen by the first byte: it
//! must return `Ok` or `Err`, never panic, and what it accepts must be consistent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nn_data::csv::{parse, Column, CsvOptions, TargetKind};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, text)) = data.split_first() else { return };
    let kind = match choice & 3 {
        0 => TargetKind::Auto,
        1 => TargetKind::Classes,
        _ => TargetKind::Real,
    };
    let target = match (choice >> 2) & 3 {
        0 => Column::Last,
        1 => Column::Index(0),
        2 => Column::Name("label".into()),
        _ => Column::Index(usize::from(choice >> 4)),
    };
    let mut options = CsvOptions::default().target(target).kind(kind);
    if choice & 0x40 != 0 {
        options = options.delimiter(b';');
    }
    if choice & 0x80 != 0 {
        options = options.targets(vec![Column::Index(0), Column::Last]);
    }
    if let Ok(d) = parse(text, "fuzz.csv", &options) {
        assert!(d.len() > 0);
        assert_eq!(d.features().len(), d.len() * d.sample_len());
        assert!(d.features().to_vec().iter().all(|v| v.is_finite()));
        assert_eq!(d.targets().len(), d.len());
        if let Some(labels) = d.targets().labels() {
            let k = d.num_classes().unwrap();
            assert_eq!(d.class_names().map(<[String]>::len), Some(k));
            assert!(labels.iter().all(|&l| l < k));
        }
    }
});
