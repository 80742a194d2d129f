use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// The security-event log: append-only, one row per event, in the order of
/// `position` (see `store/events.rs` for why that order is commit order).
/// On PostgreSQL a position comes from the one row of
/// `security_event_positions`, locked until the writer's commit; on SQLite
/// from `AUTOINCREMENT` under the single writer (never reused, even once
/// pruning has emptied the table). `login_failures` gains the window whose
/// `throttled` event was written, so one is written per identifier and window.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = db.get_database_backend() == DbBackend::Postgres;
        let mut position = ColumnDef::new(SecurityEvents::Position);
        if postgres {
            position.big_integer().not_null().primary_key();
        } else {
            position.integer().not_null().primary_key().auto_increment();
        }
        manager
            .create_table(
                Table::create()
                    .table(SecurityEvents::Table)
                    .col(&mut position)
                    .col(
                        ColumnDef::new(SecurityEvents::Id)
                            .uuid()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(SecurityEvents::OccurredAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SecurityEvents::Kind)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SecurityEvents::Failed).boolean().not_null())
                    .col(ColumnDef::new(SecurityEvents::UserId).uuid())
                    .col(ColumnDef::new(SecurityEvents::SessionId).uuid())
                    .col(
                        ColumnDef::new(SecurityEvents::ActorKind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SecurityEvents::ActorId).uuid())
                    .col(ColumnDef::new(SecurityEvents::Ip).string_len(45))
                    .col(ColumnDef::new(SecurityEvents::UserAgent).text())
                    .col(ColumnDef::new(SecurityEvents::RequestId).string_len(64))
                    .col(ColumnDef::new(SecurityEvents::Detail).text().not_null())
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "CREATE INDEX security_events_user ON security_events (user_id, position)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX security_events_occurred ON security_events (occurred_at)",
        )
        .await?;
        if postgres {
            db.execute_unprepared(
                "CREATE TABLE security_event_positions (
                    id SMALLINT NOT NULL PRIMARY KEY,
                    last BIGINT NOT NULL
                )",
            )
            .await?;
            db.execute_unprepared("INSERT INTO security_event_positions (id, last) VALUES (1, 0)")
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(LoginFailures::Table)
                    .add_column(ColumnDef::new(LoginFailures::ThrottledNotedAt).big_integer())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP TABLE security_events").await?;
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("DROP TABLE security_event_positions")
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(LoginFailures::Table)
                    .drop_column(LoginFailures::ThrottledNotedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum SecurityEvents {
    Table,
    Position,
    Id,
    OccurredAt,
    Kind,
    Failed,
    UserId,
    SessionId,
    ActorKind,
    ActorId,
    Ip,
    UserAgent,
    RequestId,
    Detail,
}

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    ThrottledNotedAt,
}
