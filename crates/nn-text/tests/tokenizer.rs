//! TextTokenizer: hand-checked ids, round trips, determinism, files.

use nn_text::tokenizer::{EOS_TOKEN, PAD_TOKEN};
use nn_text::{TextError, TextTokenizer, TokenizerKind};

const SAMPLES: &[&str] = &[
    "In the beginning God created the heaven and the earth.",
    "And the earth was without form, and void;\n\tand darkness was upon the face of the deep.",
    "  two leading spaces, trailing  ",
    "Ünïcödé: café, naïve, Übermaß; 天地創造; emoji 🙂👍🏽; Ελληνικά; עברית",
    "\u{0}\u{1}\u{7f} control bytes \r\n windows line end",
    "",
];

fn corpus() -> Vec<String> {
    let base = [
        "In the beginning God created the heaven and the earth.",
        "And the earth was without form, and void; and darkness was upon the face of the deep.",
        "And the Spirit of God moved upon the face of the waters.",
        "And God said, Let there be light: and there was light.",
        "And God saw the light, that it was good: and God divided the light from the darkness.",
    ];
    (0..20).flat_map(|_| base.iter().map(|s| s.to_string())).collect()
}

fn trained(vocab: usize) -> TextTokenizer {
    let texts = corpus();
    TextTokenizer::train_bpe(texts.iter().map(String::as_str), vocab).unwrap()
}

/// Byte `b` is id `b + 2`: "Hi é" is 48 69 20 c3 a9 in UTF-8.
#[test]
fn bytes_ids_are_hand_checked() {
    let tok = TextTokenizer::bytes();
    assert_eq!(tok.kind(), TokenizerKind::Bytes);
    assert_eq!(tok.vocab_size(), 258);
    assert_eq!(tok.pad_id(), 0);
    assert_eq!(tok.eos_id(), Some(1));
    assert_eq!(tok.encode("Hi é").unwrap(), vec![0x48 + 2, 0x69 + 2, 0x20 + 2, 0xc3 + 2, 0xa9 + 2]);
    assert_eq!(tok.encode("\u{0}").unwrap(), vec![2]);
    assert_eq!(tok.encode("\u{ff}").unwrap(), vec![0xc3 + 2, 0xbf + 2]);
    // GPT-2's byte characters: space is "Ġ", id 0x20 + 2.
    assert_eq!(tok.token_to_id("Ġ"), Some(34));
    assert_eq!(tok.id_to_token(0).as_deref(), Some(PAD_TOKEN));
    assert_eq!(tok.id_to_token(1).as_deref(), Some(EOS_TOKEN));
}

#[test]
fn bytes_round_trip() {
    let tok = TextTokenizer::bytes();
    for s in SAMPLES {
        let ids = tok.encode(s).unwrap();
        assert_eq!(ids.len(), s.len(), "{s:?}");
        assert_eq!(tok.decode(&ids).unwrap(), *s);
    }
}

/// Decoding skips special tokens, rejects ids outside the vocabulary, and
/// replaces a cut multi-byte character by U+FFFD.
#[test]
fn decode_specials_unknown_ids_and_cut_characters() {
    let tok = TextTokenizer::bytes();
    let mut ids = tok.encode("ab").unwrap();
    ids.insert(1, 0);
    ids.push(1);
    assert_eq!(tok.decode(&ids).unwrap(), "ab");
    match tok.decode(&[5, 258]) {
        Err(TextError::UnknownTokenId { id: 258, position: 1, vocab_size: 258 }) => {}
        other => panic!("expected UnknownTokenId, got {other:?}"),
    }
    // "é" is c3 a9; only its first byte.
    assert_eq!(tok.decode(&[0xc3 + 2]).unwrap(), "\u{fffd}");
}

/// The text "<pad>" is ordinary text for both kinds, never the special token.
#[test]
fn literal_special_token_text_is_not_special() {
    let bytes = TextTokenizer::bytes();
    assert_eq!(bytes.encode("<pad>").unwrap().len(), 5);
    let bpe = trained(300);
    let ids = bpe.encode("<pad><eos>").unwrap();
    assert!(!ids.contains(&0) && !ids.contains(&1), "{ids:?}");
    assert_eq!(bpe.decode(&ids).unwrap(), "<pad><eos>");
}

/// Two merges, computed by hand: in "ab ab ab ab" the words are "ab" once and
/// "Ġab" three times; the pair (a, b) is seen 4 times, (Ġ, a) 3 times, so the
/// first merge is "ab" (id 258) and the second (Ġ, ab) seen 3 times, "Ġab" (id 259).
#[test]
fn bpe_merges_are_hand_checked() {
    let tok = TextTokenizer::train_bpe(["ab ab ab ab"].into_iter(), 260).unwrap();
    assert_eq!(tok.kind(), TokenizerKind::Bpe);
    assert_eq!(tok.vocab_size(), 260);
    assert_eq!(tok.pad_id(), 0);
    assert_eq!(tok.eos_id(), Some(1));
    assert_eq!(tok.token_to_id("ab"), Some(258));
    assert_eq!(tok.token_to_id("Ġab"), Some(259));
    assert_eq!(tok.encode("ab ab").unwrap(), vec![258, 259]);
    // Not merged: a lone "a" is its byte character, whose id is its rank among the
    // 256 byte characters sorted by code point, after the 2 specials: the 94
    // characters '!'..'~' come first, so 'a' (0x61) is 2 + 0x61 - 0x21 = 66.
    assert_eq!(tok.encode("a").unwrap(), vec![66]);
    assert_eq!(tok.decode(&[258, 259, 66]).unwrap(), "ab aba");
}

#[test]
fn bpe_round_trip_ascii_and_unicode() {
    let tok = trained(400);
    assert!(tok.vocab_size() > 258 && tok.vocab_size() <= 400, "{}", tok.vocab_size());
    for s in SAMPLES {
        let ids = tok.encode(s).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), *s, "ids {ids:?}");
    }
    // Merges shorten the training text.
    let verse = "And God said, Let there be light: and there was light.";
    let n = tok.encode(verse).unwrap().len();
    assert!(n < verse.len() / 2, "{n} tokens for {} bytes", verse.len());
}

/// `encode_batch` gives, text by text, what `encode` gives.
#[test]
fn encode_batch_matches_encode() {
    for tok in [TextTokenizer::bytes(), trained(330)] {
        let batch = tok.encode_batch(SAMPLES).unwrap();
        assert_eq!(batch.len(), SAMPLES.len());
        for (ids, s) in batch.iter().zip(SAMPLES) {
            assert_eq!(ids, &tok.encode(s).unwrap());
        }
    }
}

/// The same texts give the same vocabulary, merges and ids.
#[test]
fn bpe_training_is_deterministic() {
    let a = trained(350);
    let b = trained(350);
    assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
    let text = "And the Spirit of God moved upon the face of the waters.";
    assert_eq!(a.encode(text).unwrap(), b.encode(text).unwrap());
}

#[test]
fn train_rejects_bad_arguments() {
    let texts = corpus();
    match TextTokenizer::train_bpe(texts.iter().map(String::as_str), 257) {
        Err(TextError::InvalidArgument { op, message }) => {
            assert_eq!(op, "TextTokenizer::train_bpe");
            assert!(message.contains("257"), "{message}");
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(matches!(TextTokenizer::train_bpe(["", ""].into_iter(), 300), Err(TextError::InvalidArgument { .. })));
}

/// save → load gives the same kind and ids, through the library's JSON.
#[test]
fn save_and_load_both_kinds() {
    let dir = tempfile::tempdir().unwrap();
    for tok in [TextTokenizer::bytes(), trained(320)] {
        let path = dir.path().join("tokenizer.json");
        tok.save(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["model"]["type"], "BPE");
        assert_eq!(json["pre_tokenizer"]["type"], "ByteLevel");
        assert_eq!(json["pre_tokenizer"]["add_prefix_space"], false);
        assert_eq!(json["decoder"]["type"], "ByteLevel");
        assert_eq!(json["added_tokens"][0]["content"], PAD_TOKEN);
        assert_eq!(json["added_tokens"][0]["id"], 0);
        let back = TextTokenizer::load(&path).unwrap();
        assert_eq!(back.kind(), tok.kind());
        assert_eq!(back.vocab_size(), tok.vocab_size());
        assert_eq!(back.pad_id(), 0);
        for s in SAMPLES {
            assert_eq!(back.encode(s).unwrap(), tok.encode(s).unwrap());
        }
        assert_eq!(back.encode("<pad>").unwrap(), tok.encode("<pad>").unwrap());
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.json");
    match TextTokenizer::load(&missing) {
        Err(TextError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected Io, got {other:?}"),
    }
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{not json").unwrap();
    match TextTokenizer::load(&garbage) {
        Err(e @ TextError::Tokenizer { .. }) => assert!(e.to_string().contains("garbage.json"), "{e}"),
        other => panic!("expected Tokenizer, got {other:?}"),
    }
    // A valid file without a <pad> token.
    let no_pad = dir.path().join("nopad.json");
    let json = TextTokenizer::bytes().to_json().unwrap().replace("<pad>", "<pod>");
    std::fs::write(&no_pad, json).unwrap();
    match TextTokenizer::load(&no_pad) {
        Err(e @ TextError::Tokenizer { .. }) => assert!(e.to_string().contains("no <pad> token"), "{e}"),
        other => panic!("expected Tokenizer, got {other:?}"),
    }
    // A prefix space would break the round trip.
    let prefix = dir.path().join("prefix.json");
    let json = TextTokenizer::bytes().to_json().unwrap().replacen(
        "\"add_prefix_space\": false",
        "\"add_prefix_space\": true",
        1,
    );
    std::fs::write(&prefix, json).unwrap();
    match TextTokenizer::load(&prefix) {
        Err(e @ TextError::Tokenizer { .. }) => assert!(e.to_string().contains("add_prefix_space"), "{e}"),
        other => panic!("expected Tokenizer, got {other:?}"),
    }
}
