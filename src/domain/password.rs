use std::collections::HashSet;
use std::sync::LazyLock;

use super::InvalidInput;

/// The 10,000 most common passwords, lower case (`assets/common-passwords.md`
/// says where they come from).
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../assets/common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty())
        .collect()
});

/// A password: 8-128 Unicode characters, never trimmed.
/// `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// The `reason` of a new password that is one of the most common.
pub const COMMON_PASSWORD: &str = "common";
/// The `reason` of a new password that contains the username or email.
pub const CONTAINS_IDENTITY: &str = "contains_identity";

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

    /// Parses a new password (signup, changePassword, resetPassword): the
    /// length rule, then none of the most common passwords (ignoring case,
    /// as given) and none containing `identity` words, the username and the
    /// email's local part (ignoring case; words under 3 characters don't count).
    pub fn parse_new(
        raw: &str,
        field: &'static str,
        identity: &[&str],
    ) -> Result<Self, InvalidInput> {
        let password = Self::parse(raw, field)?;
        let lower = raw.to_lowercase();
        if COMMON.contains(lower.as_str()) {
            return Err(InvalidInput::new(
                field,
                "is one of the most common passwords: choose another",
            )
            .because(COMMON_PASSWORD));
        }
        let contains = identity
            .iter()
            .map(|word| word.to_lowercase())
            .any(|word| word.chars().count() >= 3 && lower.contains(&word));
        if contains {
            return Err(InvalidInput::new(
                field,
                "contains your username or email: choose another",
            )
            .because(CONTAINS_IDENTITY));
        }
        Ok(password)
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
    fn the_common_list_ships_whole() {
        assert_eq!(COMMON.len(), 10_000);
    }

    #[test]
    fn common_passwords_are_refused_ignoring_case_as_given() {
        for common in ["password", "PASSWORD1", "Qwerty123", "iloveyou", "sunshine"] {
            let err = Password::parse_new(common, "password", &[]).unwrap_err();
            assert_eq!(err.reason, Some("common"), "{common}");
        }
        // Not trimmed into a common one: spaces make another password.
        assert!(Password::parse_new(" password ", "password", &[]).is_ok());
        assert!(Password::parse_new("correct horse battery", "password", &[]).is_ok());
    }

    #[test]
    fn identity_words_of_three_characters_or_more_are_refused() {
        let err = Password::parse_new("MyAliceRocks!", "newPassword", &["alice", "a"]).unwrap_err();
        assert_eq!(
            (err.field, err.reason),
            ("newPassword", Some("contains_identity"))
        );
        assert!(Password::parse_new("zebra-a-b-c-d", "password", &["a", "ab"]).is_ok());
        assert!(Password::parse_new("xx-JOHN.doe-xx", "password", &["john.doe"]).is_err());
    }

    #[test]
    fn debug_shows_nothing() {
        let p = Password::parse("hunter2hunter2", "password").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
