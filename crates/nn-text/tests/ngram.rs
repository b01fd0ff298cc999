//! ByteNgram (interpolated Kneser–Ney) against hand-computed probabilities, and
//! bits per byte / perplexity against their formulas.

use nn_text::ngram::{ByteNgram, DEFAULT_ORDER};
use nn_text::{bits_per_byte, bytes_per_token, perplexity, TextError};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
}

/// Order 1 on "aab": counts a = 2, b = 1; n1 = 1, n2 = 1, so Ney's D = 1/(1 + 2) =
/// 1/3; c(•) = 3, N(•) = 2: P(w) = max(c(w) − D, 0)/3 + (D · 2/3) / 256.
#[test]
fn order_one_hand_computed() {
    let m = ByteNgram::train(b"aab", 1).unwrap();
    assert_eq!(m.order(), 1);
    close(m.discounts()[0], 1.0 / 3.0);
    let lower = 2.0 / 9.0 / 256.0;
    close(m.prob(b"", b'a'), 5.0 / 9.0 + lower);
    close(m.prob(b"", b'b'), 2.0 / 9.0 + lower);
    close(m.prob(b"", b'z'), lower);
    // The history is ignored at order 1.
    close(m.prob(b"xyz", b'a'), 5.0 / 9.0 + lower);
}

/// Order 2 on "abab" with D = 0.5 at both levels. Level 2 (raw): ab = 2, ba = 1.
/// Level 1 (continuation: distinct bytes before): a = 1 (from "ba"), b = 1 (from
/// "ab"), so P1(a) = P1(b) = 0.5/2 + 0.5 · 2/2 / 256, P1(other) = 0.5/256.
#[test]
fn order_two_hand_computed() {
    let m = ByteNgram::train_with_discounts(b"abab", 2, &[0.5, 0.5]).unwrap();
    assert_eq!(m.gram_counts(), [2, 2]);
    let p1_ab = 0.25 + 0.5 / 256.0;
    let p1_z = 0.5 / 256.0;
    close(m.prob(b"", b'a'), p1_ab);
    close(m.prob(b"", b'z'), p1_z);
    // After "a": c(a•) = 2, N(a•) = 1.
    close(m.prob(b"a", b'b'), 1.5 / 2.0 + 0.5 * 0.5 * p1_ab);
    close(m.prob(b"a", b'a'), 0.25 * p1_ab);
    close(m.prob(b"a", b'z'), 0.25 * p1_z);
    // After "b": c(b•) = 1, N(b•) = 1.
    close(m.prob(b"b", b'a'), 0.5 + 0.5 * p1_ab);
    // An unseen history falls back to level 1; only the last byte is used.
    close(m.prob(b"z", b'a'), p1_ab);
    close(m.prob(b"zza", b'b'), 1.5 / 2.0 + 0.25 * p1_ab);
    // Bits per byte of "ab": the first byte from level 1, the second after "a".
    let expected = -((p1_ab).log2() + (0.75 + 0.25 * p1_ab).log2()) / 2.0;
    close(m.bits_per_byte(b"ab").unwrap(), expected);
    // Ney's estimates: level 2 n1 = 1, n2 = 1 → 1/3; level 1 n1 = 2, n2 = 0 → 1,
    // clamped to 0.9.
    let ney = ByteNgram::train(b"abab", 2).unwrap();
    close(ney.discounts()[0], 0.9);
    close(ney.discounts()[1], 1.0 / 3.0);
}

/// Every history gives a distribution over the 256 bytes that sums to 1.
#[test]
fn probabilities_sum_to_one() {
    let text = "And God said, Let there be light: and there was light. And God saw the light, that it was good. \
                Ünïcödé bytes too: 天地.";
    for order in [1, 2, 3, DEFAULT_ORDER, 8] {
        let m = ByteNgram::train(text.as_bytes(), order).unwrap();
        for history in [&b""[..], b"A", b"And ", b"light", b" the", b"qqqq", b"\xe5\xa4", b"there was"] {
            let d = m.distribution(history);
            assert_eq!(d.len(), 256);
            let sum: f64 = d.iter().sum();
            assert!((sum - 1.0).abs() < 1e-12, "order {order}, history {history:?}: {sum}");
            assert!(d.iter().all(|&p| p > 0.0));
        }
    }
}

/// "abc" repeated: order 3 predicts every byte after the first two almost surely;
/// order 1 sees three equally frequent bytes (about log2 3 = 1.58 bits).
#[test]
fn higher_order_learns_a_periodic_text() {
    let text = "abc".repeat(200);
    let m3 = ByteNgram::train(text.as_bytes(), 3).unwrap();
    let m1 = ByteNgram::train(text.as_bytes(), 1).unwrap();
    let bpb3 = m3.bits_per_byte(text.as_bytes()).unwrap();
    let bpb1 = m1.bits_per_byte(text.as_bytes()).unwrap();
    assert!(bpb3 < 0.1, "{bpb3}");
    assert!((1.58..1.65).contains(&bpb1), "{bpb1}");
}

#[test]
fn ngram_errors() {
    for order in [0, 9] {
        match ByteNgram::train(b"abcdefghij", order) {
            Err(TextError::InvalidArgument { message, .. }) => assert!(message.contains("1..=8"), "{message}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
    assert!(ByteNgram::train(b"ab", 3).is_err());
    assert!(ByteNgram::train_with_discounts(b"abc", 2, &[0.5]).is_err());
    assert!(ByteNgram::train_with_discounts(b"abc", 2, &[0.5, 0.0]).is_err());
    assert!(ByteNgram::train_with_discounts(b"abc", 2, &[0.5, 1.5]).is_err());
    assert!(ByteNgram::train(b"abc", 2).unwrap().bits_per_byte(b"").is_err());
}

/// bpb = loss · tokens / (bytes · ln 2): 2 nats per token over 100 tokens of 400
/// bytes is 200 nats / 400 bytes = 0.5 nats per byte = 0.5 / ln 2 bits.
#[test]
fn bits_per_byte_and_perplexity_formulas() {
    close(bits_per_byte(2.0, 100, 400).unwrap(), 0.5 / std::f64::consts::LN_2);
    // One token per byte, loss ln 2: exactly 1 bit per byte.
    close(bits_per_byte(std::f64::consts::LN_2, 10, 10).unwrap(), 1.0);
    close(bits_per_byte(0.0, 10, 10).unwrap(), 0.0);
    close(perplexity(7f64.ln()).unwrap(), 7.0);
    close(perplexity(0.0).unwrap(), 1.0);
    close(bytes_per_token(400, 100).unwrap(), 4.0);
    assert!(bits_per_byte(1.0, 10, 0).is_err());
    assert!(bits_per_byte(f64::NAN, 10, 10).is_err());
    assert!(bits_per_byte(-0.1, 10, 10).is_err());
    assert!(perplexity(f64::INFINITY).is_err());
    assert!(bytes_per_token(10, 0).is_err());
}
