//! Free text that clients and admins choose, and the console, logs and chat messages show.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `value` holds a control character or a Unicode format character (category Cf:
/// bidi overrides, zero-width characters, tag characters). Either would let a name read as
/// something it is not, where an operator decides whom to approve.
pub fn has_hidden_chars(value: &str) -> bool {
    value
        .chars()
        .any(|c| c.is_control() || c.general_category() == GeneralCategory::Format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_overrides_zero_width_and_control_characters_are_hidden_and_plain_text_is_not() {
        for hidden in [
            "evil\u{202E}gnp.exe",
            "a\u{200B}b",
            "x\u{2066}y",
            "t\u{E0041}",
            "a\nb",
        ] {
            assert!(has_hidden_chars(hidden), "{hidden:?}");
        }
        for plain in ["laptop-7", "Zoë's Mac", "東京", "a b"] {
            assert!(!has_hidden_chars(plain), "{plain:?}");
        }
    }
}
