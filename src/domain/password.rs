use super::InvalidInput;

/// A new password: 8-128 Unicode characters, never trimmed.
/// `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 128;

    /// Parses a password for `field` (`password`, or `newPassword` when changing it).
    pub fn parse(raw: &str, field: &'static str) -> Result<Self, InvalidInput> {
        let len = raw.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(InvalidInput::new(field, "must be 8 to 128 characters long"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_characters_not_bytes() {
        // 8 emoji are 32 bytes but 8 characters.
        assert!(Password::parse(&"😀".repeat(8), "password").is_ok());
        assert!(Password::parse(&"😀".repeat(7), "password").is_err());
        assert!(Password::parse(&"é".repeat(128), "password").is_ok());
        assert!(Password::parse(&"é".repeat(129), "password").is_err());
    }

    #[test]
    fn is_never_trimmed() {
        let p = Password::parse("  secret  ", "password").unwrap();
        assert_eq!(p.expose(), "  secret  ");
        assert!(Password::parse("   short", "password").is_ok());
    }

    #[test]
    fn names_the_field_it_was_given() {
        let err = Password::parse("short", "newPassword").unwrap_err();
        assert_eq!(err.field, "newPassword");
    }

    #[test]
    fn debug_shows_nothing() {
        let p = Password::parse("hunter2hunter2", "password").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
