use sea_orm_migration::prelude::*;

/// The per-address mail limit as one counter a row, decided by one upsert
/// (`mail_windows`), in place of a row per request counted and then written
/// in two steps (`mail_requests`), which concurrent requests slipped past.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MailWindows::Table)
                    .col(
                        ColumnDef::new(MailWindows::AddressHash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(MailWindows::Requests).integer().not_null())
                    .col(
                        ColumnDef::new(MailWindows::WindowStartedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("mail_windows_window_started_at")
                    .table(MailWindows::Table)
                    .col(MailWindows::WindowStartedAt)
                    .to_owned(),
            )
            .await?;
        // An hour's counts at most: nothing worth carrying over.
        manager
            .drop_table(Table::drop().table(MailRequests::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MailRequests::Table)
                    .col(
                        ColumnDef::new(MailRequests::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(MailRequests::AddressHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MailRequests::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("mail_requests_address_created")
                    .table(MailRequests::Table)
                    .col(MailRequests::AddressHash)
                    .col(MailRequests::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(MailWindows::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MailWindows {
    Table,
    AddressHash,
    Requests,
    WindowStartedAt,
}

#[derive(DeriveIden)]
enum MailRequests {
    Table,
    Id,
    AddressHash,
    CreatedAt,
}
