use sea_orm_migration::prelude::*;

/// Check values of the keys every server of one database must share: a MAC
/// of a fixed label under a subkey of the key, never the key or a hash of
/// it, so a server started with another key stops at once.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(KeyChecks::Table)
                    .col(
                        ColumnDef::new(KeyChecks::Name)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(KeyChecks::CheckValue)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(KeyChecks::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(KeyChecks::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum KeyChecks {
    Table,
    Name,
    CheckValue,
    CreatedAt,
}
