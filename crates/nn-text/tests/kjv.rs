//! The King James Version: BPE training, tokens per byte, the n-gram baseline and
//! the classification data. Needs `$NN_DATA_DIR/kjv/verses.csv.gz`; run with
//! `NN_DATA_DIR=/work/shared/data cargo test --release -p nn-text --test kjv -- --ignored --nocapture`.

use std::path::PathBuf;
use std::time::Instant;

use nn_text::data::read_kjv;
use nn_text::ngram::ByteNgram;
use nn_text::{bytes_per_token, chapter_split, encode_classification, per_class_sample, TextTable, TextTokenizer};

fn kjv() -> TextTable {
    let dir = std::env::var_os("NN_DATA_DIR").map(PathBuf::from).expect("set NN_DATA_DIR to the shared data folder");
    read_kjv(dir).unwrap()
}

/// The verses of `rows`, one per line.
fn joined(table: &TextTable, rows: impl IntoIterator<Item = usize>) -> String {
    let texts = table.texts();
    rows.into_iter().map(|r| texts[r].as_str()).collect::<Vec<_>>().join("\n")
}

#[test]
#[ignore = "needs KJV: set NN_DATA_DIR"]
fn kjv_table_and_held_out_chapters() {
    let table = kjv();
    assert_eq!(table.len(), 31_102);
    assert_eq!(
        table.class_names(),
        ["epistles", "gospels_acts", "history", "law", "major_prophets", "minor_prophets", "revelation", "wisdom"]
    );
    let split = chapter_split(&table, 0.1, 42).unwrap();
    // 1,189 chapters in the KJV; 10% of them, rounded, held out.
    assert_eq!(split.train_groups + split.test_groups, 1_189);
    assert_eq!(split.test_groups, 119);
    let books = table.column("book").unwrap();
    let chapters = table.column("chapter").unwrap();
    let key = |r: usize| (books[r].as_str(), chapters[r].as_str());
    let train: std::collections::HashSet<_> = split.train.iter().map(|&r| key(r)).collect();
    assert!(split.test.iter().all(|&r| !train.contains(&key(r))));
    println!("chapter split: {} training verses, {} test verses", split.train.len(), split.test.len());

    let sample = per_class_sample(table.labels(), 50, 7).unwrap();
    assert_eq!(sample.len(), 400);
    assert_eq!(per_class_sample(table.labels(), 50, 7).unwrap(), sample);
    let counts = table.select(&sample).unwrap().labels().iter().fold(vec![0; 8], |mut c, &l| {
        c[l] += 1;
        c
    });
    assert_eq!(counts, [50; 8]);
}

#[test]
#[ignore = "needs KJV: set NN_DATA_DIR"]
fn kjv_bpe_tokens_per_byte() {
    let table = kjv();
    let text = joined(&table, 0..table.len());
    let bytes = text.len();
    println!("KJV: {} verses, {bytes} bytes joined by newlines", table.len());

    let start = Instant::now();
    let bpe = TextTokenizer::train_bpe(table.texts().iter().map(String::as_str), 4096).unwrap();
    let train_s = start.elapsed().as_secs_f64();
    assert_eq!(bpe.vocab_size(), 4096);

    let start = Instant::now();
    let ids = bpe.encode(&text).unwrap();
    let encode_s = start.elapsed().as_secs_f64();
    let bpt = bytes_per_token(bytes, ids.len()).unwrap();
    println!(
        "BPE vocab {}: trained in {train_s:.2} s, {} tokens ({bpt:.3} bytes/token), encoded in {encode_s:.2} s",
        bpe.vocab_size(),
        ids.len()
    );
    // Measured: 3.992 bytes per token (1,036,513 tokens).
    assert!((3.8..4.2).contains(&bpt), "{bpt} bytes per token");
    assert_eq!(bpe.decode(&ids).unwrap(), text);

    // Verse by verse (in parallel): GPT-2's word split cuts before and after each
    // "\n" that precedes a letter, so the verses' tokens plus one newline token per
    // boundary are exactly the whole text's (measured: 1,005,412 + 31,101).
    let verses: Vec<&str> = table.texts().iter().map(String::as_str).collect();
    let start = Instant::now();
    let per_verse = bpe.encode_batch(&verses).unwrap();
    let batch_s = start.elapsed().as_secs_f64();
    let verse_tokens: usize = per_verse.iter().map(Vec::len).sum();
    println!("verse by verse: {verse_tokens} tokens + {} newlines, encoded in {batch_s:.2} s", verses.len() - 1);
    assert_eq!(verse_tokens + verses.len() - 1, ids.len());

    let bytes_tok = TextTokenizer::bytes();
    assert_eq!(bytes_tok.encode(&text).unwrap().len(), bytes);

    // Deterministic, and the file gives the same ids.
    let again = TextTokenizer::train_bpe(table.texts().iter().map(String::as_str), 4096).unwrap();
    assert_eq!(again.to_json().unwrap(), bpe.to_json().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    bpe.save(&path).unwrap();
    let loaded = TextTokenizer::load(&path).unwrap();
    let genesis = joined(&table, 0..31);
    assert_eq!(loaded.encode(&genesis).unwrap(), bpe.encode(&genesis).unwrap());

    // Classification data: 50 verses per division, 64 tokens each.
    let sample = table.select(&per_class_sample(table.labels(), 50, 7).unwrap()).unwrap();
    let enc = encode_classification(&sample, &bpe, 64).unwrap();
    println!("400 sampled verses at context 64: {} truncated", enc.truncated);
    assert_eq!(enc.dataset.len(), 400);
    assert!(enc.truncated < 20, "{}", enc.truncated);
}

/// Byte n-gram baseline on held-out chapters (10%, seed 42): trained on the
/// training verses, evaluated on the test verses, each side joined by newlines.
#[test]
#[ignore = "needs KJV: set NN_DATA_DIR"]
fn kjv_ngram_bits_per_byte() {
    let table = kjv();
    let split = chapter_split(&table, 0.1, 42).unwrap();
    let train = joined(&table, split.train.iter().copied());
    let test = joined(&table, split.test.iter().copied());
    // Measured: 2.512 (order 3) and 1.662 (order 5).
    for (order, range) in [(3, 2.3..2.7), (5, 1.5..1.85)] {
        let start = Instant::now();
        let m = ByteNgram::train(train.as_bytes(), order).unwrap();
        let bpb = m.bits_per_byte(test.as_bytes()).unwrap();
        println!(
            "order {order}: {bpb:.4} bits/byte on {} held-out bytes (discounts {:?}, {:.2} s)",
            test.len(),
            m.discounts(),
            start.elapsed().as_secs_f64()
        );
        assert!(range.contains(&bpb), "order {order}: {bpb}");
    }
}
