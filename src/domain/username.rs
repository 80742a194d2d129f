use super::InvalidInput;

/// A username: trimmed, 3-32 characters of `A-Z a-z 0-9 _ . -`, kept in the case given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN: usize = 3;
    pub const MAX: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let value = raw.trim();
        let len = value.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(InvalidInput::new(
                "username",
                "must be 3 to 32 characters long",
            ));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(InvalidInput::new(
                "username",
                "may contain only letters A-Z, digits, '_', '.' and '-'",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The unique key: usernames are unique ignoring case.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_case_and_trims() {
        let name = Username::parse("  Alice_1.x-y ").unwrap();
        assert_eq!(name.as_str(), "Alice_1.x-y");
        assert_eq!(name.key(), "alice_1.x-y");
    }

    #[test]
    fn length_bounds_are_three_and_thirty_two() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse("  ab  ").is_err());
    }

    #[test]
    fn refuses_characters_outside_the_set() {
        for bad in [
            "ali ce", "alice@x", "al'ice", "ali\0ce", "élise", "bob😀", "a;--", "x/y",
        ] {
            let err = Username::parse(bad).unwrap_err();
            assert_eq!(err.field, "username", "{bad:?}");
        }
    }
}
