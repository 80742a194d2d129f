//! Schema migrations of authgraph. `authgraph migrate` (and `serve`) apply them.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_tables;
mod m20261201_000001_create_login_failures;
mod m20261201_000002_create_mail;
mod m20261202_000001_create_api_keys;
mod m20261202_000002_create_mfa;
mod m20261204_000001_create_mail_windows;
mod m20261204_000002_create_key_checks;
mod m20261205_000001_create_security_events;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_tables::Migration),
            Box::new(m20261201_000001_create_login_failures::Migration),
            Box::new(m20261201_000002_create_mail::Migration),
            Box::new(m20261202_000001_create_api_keys::Migration),
            Box::new(m20261202_000002_create_mfa::Migration),
            Box::new(m20261204_000001_create_mail_windows::Migration),
            Box::new(m20261204_000002_create_key_checks::Migration),
            Box::new(m20261205_000001_create_security_events::Migration),
        ]
    }
}
