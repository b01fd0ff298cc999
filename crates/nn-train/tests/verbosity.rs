//! Keras's `verbose` values as [`Verbosity`].

use nn_train::{TrainError, Verbosity};

#[test]
fn keras_verbose_numbers_and_auto() {
    assert_eq!(Verbosity::try_from(0u8).unwrap(), Verbosity::Silent);
    assert_eq!(Verbosity::try_from(1u8).unwrap(), Verbosity::Auto);
    assert_eq!(Verbosity::try_from(2u8).unwrap(), Verbosity::Lines);
    for (text, want) in [
        ("0", Verbosity::Silent),
        ("1", Verbosity::Auto),
        ("2", Verbosity::Lines),
        ("auto", Verbosity::Auto),
        ("AUTO", Verbosity::Auto),
        (" 2 ", Verbosity::Lines),
    ] {
        assert_eq!(text.parse::<Verbosity>().unwrap(), want, "{text:?}");
    }
    assert_eq!(Verbosity::default(), Verbosity::Auto);
}

#[test]
fn other_values_are_config_errors_that_say_what_is_accepted() {
    let e = Verbosity::try_from(3u8).unwrap_err();
    assert!(matches!(e, TrainError::Config(_)), "{e:?}");
    assert_eq!(e.to_string(), "invalid configuration: verbosity must be 0, 1, 2 or \"auto\", got 3");
    for text in ["3", "", "-1", "silent", "1.0"] {
        let e = text.parse::<Verbosity>().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("invalid configuration: verbosity must be 0, 1, 2 or \"auto\", got {text:?}"),
            "{text:?}"
        );
    }
}
