//! A key that never shows itself: in `Debug`, in a log line, in an error.
//! A leaf, so configuration and token code can both hold one.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The shortest HS256 key accepted (API.md: 32 bytes).
    pub const MIN_LEN: usize = 32;

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<Vec<u8>> for Secret {
    fn from(value: Vec<u8>) -> Self {
        Self(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_nothing_of_the_key() {
        let key = Secret::from("a-key-that-must-never-show".to_owned());
        assert_eq!(format!("{key:?}"), "Secret(..)");
    }
}
