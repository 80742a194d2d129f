use sea_orm_migration::prelude::*;

/// Multi-factor authentication: a user's TOTP credential (the secret sealed
/// under the data key), recovery codes (MACs only), and the pending second
/// steps of logins (`mfaToken`s, hashes only).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TotpCredentials::Table)
                    .col(
                        ColumnDef::new(TotpCredentials::UserId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TotpCredentials::SealedSecret)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TotpCredentials::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TotpCredentials::EnabledAt)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TotpCredentials::LastStep)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TotpCredentials::Table, TotpCredentials::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .col(
                        ColumnDef::new(RecoveryCodes::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(RecoveryCodes::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(RecoveryCodes::CodeMac)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(RecoveryCodes::UsedAt).big_integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(RecoveryCodes::Table, RecoveryCodes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("recovery_codes_user_mac")
                    .table(RecoveryCodes::Table)
                    .col(RecoveryCodes::UserId)
                    .col(RecoveryCodes::CodeMac)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MfaChallenges::Table)
                    .col(
                        ColumnDef::new(MfaChallenges::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(MfaChallenges::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(MfaChallenges::TokenHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(MfaChallenges::UserAgent).text().null())
                    .col(
                        ColumnDef::new(MfaChallenges::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MfaChallenges::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MfaChallenges::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(MfaChallenges::EndedAt).big_integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(MfaChallenges::Table, MfaChallenges::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("mfa_challenges_token_hash")
                    .table(MfaChallenges::Table)
                    .col(MfaChallenges::TokenHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("mfa_challenges_user_id")
                    .table(MfaChallenges::Table)
                    .col(MfaChallenges::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MfaChallenges::Table.into_iden(),
            RecoveryCodes::Table.into_iden(),
            TotpCredentials::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum TotpCredentials {
    Table,
    UserId,
    SealedSecret,
    CreatedAt,
    EnabledAt,
    LastStep,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeMac,
    UsedAt,
}

#[derive(DeriveIden)]
enum MfaChallenges {
    Table,
    Id,
    UserId,
    TokenHash,
    UserAgent,
    CreatedAt,
    ExpiresAt,
    Failures,
    EndedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
