//! What every connection shares: `PageInfo` (the Relay shape) and opaque
//! cursors, each list's own: base64url of `prefix` and a position, so a
//! cursor of one list is refused by another.

use async_graphql::SimpleObject;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Where a page sits in the whole list.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// True when more entries follow this page.
    has_next_page: bool,
    /// The cursor of the page's last entry; null on an empty page.
    end_cursor: Option<String>,
}

impl PageInfo {
    pub(super) fn new(has_next_page: bool, end_cursor: Option<String>) -> Self {
        Self {
            has_next_page,
            end_cursor,
        }
    }
}

/// The cursor of `position` in the list whose cursors start `prefix`.
pub(super) fn encode_cursor(prefix: &str, position: impl std::fmt::Display) -> String {
    URL_SAFE_NO_PAD.encode(format!("{prefix}{position}"))
}

/// The position of a cursor of the list `prefix` names; `None` for
/// anything else.
pub(super) fn decode_cursor<T: std::str::FromStr>(prefix: &str, cursor: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix(prefix)?.parse().ok()
}
