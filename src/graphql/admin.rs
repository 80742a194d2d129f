//! users and setRole: for ADMINs only.

use async_graphql::{Context, ID, Object, SimpleObject};
use uuid::Uuid;

use super::context::{AdminOnly, ContextExt, NoApiKey};
use super::paging::{self, PageInfo};
use super::reauth;
use super::types::{Role, User};
use crate::domain::InvalidInput;
use crate::error::AppError;
use crate::events::Actor;
use crate::store::SetRoleError;

const DEFAULT_PAGE: i32 = 20;
const MAX_PAGE: i32 = 100;
const CURSOR_PREFIX: &str = "user:";

/// An opaque cursor: the position after the user with this id.
fn encode_cursor(id: Uuid) -> String {
    paging::encode_cursor(CURSOR_PREFIX, id)
}

fn decode_cursor(cursor: &str) -> Option<Uuid> {
    paging::decode_cursor(CURSOR_PREFIX, cursor)
}

/// A user and its position in the list.
#[derive(SimpleObject)]
pub struct UserEdge {
    /// Pass as `after` to continue after this user.
    cursor: String,
    node: User,
}

/// One page of users, oldest account first.
#[derive(SimpleObject)]
pub struct UserConnection {
    edges: Vec<UserEdge>,
    page_info: PageInfo,
    /// How many users there are in all.
    total_count: i32,
}

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// All users, oldest account first, a page at a time. ADMIN only.
    /// `first` is 1..100; `after` is an `endCursor` or `cursor` from an earlier page.
    #[graphql(guard = "AdminOnly")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<UserConnection, AppError> {
        // An omitted variable reaches here as null: it means the default too.
        let first = first.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(InvalidInput::new("first", "must be between 1 and 100").into());
        }
        let after = match after.as_deref() {
            None => None,
            Some(cursor) => Some(
                decode_cursor(cursor)
                    .ok_or(InvalidInput::new("after", "is not a cursor from this list"))?,
            ),
        };
        let store = &ctx.state().store;
        // One extra row tells whether another page follows.
        let limit = u64::try_from(first).unwrap_or(1);
        let mut users = store.users_page(after, limit + 1).await?;
        let has_next_page = users.len() as u64 > limit;
        users.truncate(first as usize);
        let total_count = i32::try_from(store.count_users().await?).unwrap_or(i32::MAX);
        let edges: Vec<UserEdge> = users
            .into_iter()
            .map(|user| UserEdge {
                cursor: encode_cursor(user.id),
                node: User(user),
            })
            .collect();
        Ok(UserConnection {
            page_info: PageInfo::new(has_next_page, edges.last().map(|e| e.cursor.clone())),
            edges,
            total_count,
        })
    }
}

#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Gives a user a role. ADMIN only. Takes effect on the user's next request.
    /// Demoting the last ADMIN is `FORBIDDEN`: the service always keeps one.
    /// Granting ADMIN needs a fresh proof (the password again, with `code`
    /// once MFA is on, or a session signed in less than `REAUTH_WINDOW`
    /// ago), so a stolen admin token can't mint a lasting admin.
    #[graphql(guard = "AdminOnly.and(NoApiKey)")]
    async fn set_role(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        role: Role,
        password: Option<String>,
        code: Option<String>,
    ) -> Result<User, AppError> {
        let unknown = || InvalidInput::new("userId", "is not the id of a user");
        let id = Uuid::parse_str(&user_id).map_err(|_| unknown())?;
        if role == Role::Admin {
            let requester = ctx.requester().await?;
            if password.is_some() {
                ctx.rate_limit()?;
            }
            reauth::fresh_proof(ctx, &requester, password, code.as_deref()).await?;
        }
        let requester = ctx.requester().await?;
        let by = match requester.user.id == id {
            true => Actor::user(id),
            false => Actor::admin(requester.user.id),
        };
        let here = (&*ctx.meta().source, by, requester.sid());
        let at = ctx.state().clock.now();
        match ctx.state().store.set_role(id, role.into(), here, at).await {
            Ok(user) => {
                ctx.forget_requester().await;
                Ok(User(user.into()))
            }
            Err(SetRoleError::LastAdmin) => Err(AppError::Forbidden),
            Err(SetRoleError::UnknownUser) => Err(unknown().into()),
            Err(SetRoleError::Db(err)) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)), Some(id));
        for bad in ["", "abc", "dXNlcjpub3QtYS11dWlk", &id.to_string()] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
