//! A customer as an erasure or access request names them: by phone.

/// The phone's digits as the gateway stores it (country code, no `+`), from
/// any usual formatting (`+55 (11) 98765-4321`); `None` for anything that
/// is not a phone number with its country code (6 to 15 digits, ITU E.164).
pub fn phone_digits(raw: &str) -> Option<String> {
    if raw.len() > 40
        || !raw
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        return None;
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    (6..=15).contains(&digits.len()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_in_any_usual_formatting_and_nothing_else() {
        assert_eq!(
            phone_digits("+55 (11) 98765-4321").as_deref(),
            Some("5511987654321")
        );
        assert_eq!(phone_digits("79161234567").as_deref(), Some("79161234567"));
        for bad in [
            "maria@example.com",
            "12345",
            "1234567890123456",
            "",
            "+7 916 123 45 67 ext 9",
            &"1".repeat(1 << 20),
        ] {
            assert_eq!(phone_digits(bad), None, "{bad:.20}");
        }
    }
}
