use super::InvalidInput;

/// The part of an email address before the last `@`.
pub fn local_part(email: &str) -> &str {
    email.rsplit_once('@').map_or(email, |(local, _)| local)
}

/// An email address: trimmed, lower-cased, at most 254 characters, one `@`,
/// something before it and a dot inside the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let value = raw.trim().to_lowercase();
        if value.chars().count() > Self::MAX {
            return Err(InvalidInput::new(
                "email",
                "must be at most 254 characters long",
            ));
        }
        let invalid = || InvalidInput::new("email", "is not a valid email address");
        let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
        let domain_ok = !domain.contains('@')
            && domain
                .split_once('.')
                .is_some_and(|(head, tail)| !head.is_empty() && !tail.is_empty())
            && !domain.ends_with('.');
        let printable = value.chars().all(|c| !c.is_control() && !c.is_whitespace());
        if local.is_empty() || !domain_ok || !printable {
            return Err(invalid());
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lower_cases() {
        let email = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "alice@example.com");
    }

    #[test]
    fn needs_one_at_and_a_dot_in_the_domain() {
        for bad in [
            "alice",
            "alice@example",
            "@example.com",
            "a@b@example.com",
            "alice@.com",
            "alice@example.",
            "al ice@example.com",
            "alice@exa\0mple.com",
            "",
        ] {
            assert_eq!(Email::parse(bad).unwrap_err().field, "email", "{bad:?}");
        }
        assert!(Email::parse("a@b.co").is_ok());
        assert!(Email::parse("first.last+tag@sub.example.org").is_ok());
    }

    #[test]
    fn at_most_254_characters() {
        let ok = format!("{}@example.com", "a".repeat(254 - 12));
        assert_eq!(ok.len(), 254);
        assert!(Email::parse(&ok).is_ok());
        let long = format!("{}@example.com", "a".repeat(255 - 12));
        assert!(Email::parse(&long).is_err());
    }
}
