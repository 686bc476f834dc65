//! The statements push runs against a store: the select that yields the devices and the
//! templates of what feedback does (and undoes). The defaults are today's table
//! `devices(platform, token, updated_at)`; `--query`, `--on-invalid`, `--on-new-token`,
//! `--on-restore-invalid` and `--on-restore-new-token` replace them for any other schema.

use crate::sql_template::{self, Dialect, Param, Statement};

/// The select of today's table in SQLite (`row_id` names a malformed row in the feedback).
const QUERY_SQLITE: &str = "SELECT rowid AS row_id, platform, token FROM devices";
/// The select of today's table in PostgreSQL.
const QUERY_POSTGRES: &str = "SELECT platform, token FROM devices";

/// Delete an invalid device unless it registered again after the provider's timestamp.
pub const ON_INVALID: &str = "DELETE FROM devices WHERE token = :token \
    AND (CAST(:unregistered_at AS BIGINT) IS NULL OR updated_at IS NULL \
    OR updated_at <= :unregistered_at) RETURNING updated_at";

/// Replace a token by its canonical id; when the canonical id is already stored, the old row
/// is a duplicate and goes (the first statement, a merge).
pub const ON_NEW_TOKEN: &str = "DELETE FROM devices WHERE token = :token \
    AND EXISTS (SELECT 1 FROM devices WHERE token = :new_token); \
    UPDATE devices SET token = :new_token, updated_at = :now WHERE token = :token";

/// Put a deleted row back (with its journaled `updated_at`).
pub const ON_RESTORE_INVALID: &str = "INSERT INTO devices(platform, token, updated_at) \
    SELECT CAST(:platform AS TEXT), CAST(:token AS TEXT), CAST(:updated_at AS BIGINT) \
    WHERE NOT EXISTS (SELECT 1 FROM devices WHERE token = :token)";

/// Change a replaced token back.
pub const ON_RESTORE_NEW_TOKEN: &str = "UPDATE devices SET token = :token \
    WHERE token = :new_token AND NOT EXISTS (SELECT 1 FROM devices WHERE token = :token)";

/// The user's statements, as given on the command line (`None`: the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Custom {
    /// `--query`.
    pub query: Option<String>,
    /// `--on-invalid`.
    pub on_invalid: Option<String>,
    /// `--on-new-token`.
    pub on_new_token: Option<String>,
    /// `--on-restore-invalid`.
    pub on_restore_invalid: Option<String>,
    /// `--on-restore-new-token`.
    pub on_restore_new_token: Option<String>,
}

/// The statements of a run, parsed for the store's dialect.
#[derive(Debug, Clone)]
pub struct Schema {
    /// The select that yields `platform` and `token` (and maybe `row_id`), without a
    /// trailing `;`.
    pub query: String,
    /// What an invalid device does.
    pub on_invalid: Vec<Statement>,
    /// What a canonical id does.
    pub on_new_token: Vec<Statement>,
    /// The first statement of `on_new_token` is a merge (today's table only).
    pub merge_first: bool,
    /// Undo a deletion.
    pub on_restore_invalid: Vec<Statement>,
    /// Undo a replacement.
    pub on_restore_new_token: Vec<Statement>,
    /// Today's table: push may add `updated_at` to it.
    pub default_table: bool,
}

impl Schema {
    /// The statements for `dialect`: the user's where given, else today's table's.
    pub fn new(dialect: Dialect, custom: &Custom) -> Result<Schema, String> {
        let parse = |given: &Option<String>, default: &str, allowed: &[Param], what: &str| {
            sql_template::parse(given.as_deref().unwrap_or(default), dialect, allowed, what)
        };
        let query = match (&custom.query, dialect) {
            (Some(query), _) => {
                // The query takes no parameters: checking it the same way refuses `:x`.
                sql_template::parse(query, dialect, &[], "--query")?;
                query.trim().trim_end_matches(';').to_owned()
            }
            (None, Dialect::Sqlite) => QUERY_SQLITE.to_owned(),
            (None, Dialect::Postgres) => QUERY_POSTGRES.to_owned(),
        };
        use Param::*;
        Ok(Schema {
            query,
            on_invalid: parse(
                &custom.on_invalid,
                ON_INVALID,
                &[Token, Platform, UnregisteredAt, Reason, Now],
                "--on-invalid",
            )?,
            on_new_token: parse(
                &custom.on_new_token,
                ON_NEW_TOKEN,
                &[Token, NewToken, Platform, Now],
                "--on-new-token",
            )?,
            merge_first: custom.on_new_token.is_none(),
            on_restore_invalid: parse(
                &custom.on_restore_invalid,
                ON_RESTORE_INVALID,
                &[Token, Platform, UpdatedAt, Now],
                "--on-restore-invalid",
            )?,
            on_restore_new_token: parse(
                &custom.on_restore_new_token,
                ON_RESTORE_NEW_TOKEN,
                &[Token, NewToken, Platform, Now],
                "--on-restore-new-token",
            )?,
            default_table: custom.query.is_none(),
        })
    }

    /// The query, without the devices journaled by the resumed run (bound to its one
    /// parameter) when `resume`.
    pub fn pending(&self, dialect: Dialect, resume: bool) -> Statement {
        let run = match dialect {
            Dialect::Sqlite => "?1",
            Dialect::Postgres => "$1",
        };
        let query = &self.query;
        if resume {
            Statement {
                sql: format!(
                    "SELECT * FROM ({query}) AS q WHERE NOT EXISTS (SELECT 1 FROM \
                     push_run_devices d WHERE d.run = {run} AND d.token = q.token)"
                ),
                params: vec![Param::Run],
            }
        } else {
            Statement {
                sql: query.clone(),
                params: Vec::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_for_both_dialects_and_custom_templates_are_checked() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let schema = Schema::new(dialect, &Custom::default()).unwrap();
            assert!(schema.merge_first && schema.default_table);
            assert_eq!(schema.on_new_token.len(), 2);
        }
        let custom = Custom {
            query: Some("SELECT kind AS platform, value AS token FROM push_tokens;".into()),
            on_invalid: Some(
                "UPDATE push_tokens SET deleted_at = :now WHERE value = :token".into(),
            ),
            ..Custom::default()
        };
        let schema = Schema::new(Dialect::Postgres, &custom).unwrap();
        assert!(!schema.default_table);
        assert!(!schema.query.ends_with(';'));
        assert_eq!(
            schema.on_invalid[0].sql,
            "UPDATE push_tokens SET deleted_at = $1 WHERE value = $2"
        );
        let pending = schema.pending(Dialect::Postgres, true);
        assert!(pending.sql.contains("d.run = $1"));
        let bad = Custom {
            on_new_token: Some("UPDATE t SET v = :new_token WHERE v = :tok".into()),
            ..Custom::default()
        };
        assert!(
            Schema::new(Dialect::Sqlite, &bad)
                .unwrap_err()
                .contains("--on-new-token")
        );
        let bad = Custom {
            query: Some("SELECT * FROM t WHERE a = :token".into()),
            ..Custom::default()
        };
        assert!(Schema::new(Dialect::Sqlite, &bad).is_err());
    }
}
