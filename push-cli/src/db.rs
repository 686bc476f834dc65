//! One connection to a token store, SQLite or PostgreSQL, behind the few operations push
//! needs: run a statement with bound values, run a script, read a small result, and stream a
//! large one through a cursor.
//!
//! Both drivers are blocking, used from push's own threads (the reader, the recorder): the
//! `postgres` crate runs each connection on a private current-thread tokio runtime, so
//! nothing of it reaches the smol executor that sends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::types::{ToSql, Type};
use rusqlite::OpenFlags;

use crate::sql_template::{Dialect, Param, Statement};

/// How long an SQLite statement waits for another program's lock before it fails.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// An internal statement written with SQLite's `?N` placeholders, for `dialect`.
pub fn internal(dialect: Dialect, sql: &str) -> Statement {
    let sql = match dialect {
        Dialect::Sqlite => sql.to_owned(),
        Dialect::Postgres => sql.replace('?', "$"),
    };
    Statement {
        sql,
        params: Vec::new(),
    }
}

/// Rows fetched from a PostgreSQL cursor at a time.
const PG_FETCH: i32 = 1000;

/// Where the store is: an SQLite file, or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Target {
    /// `--db`: a PostgreSQL URL, or else an SQLite path.
    pub fn parse(db: &Path) -> Target {
        match db.to_str() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Target::Postgres(url.to_owned())
            }
            _ => Target::Sqlite(db.to_owned()),
        }
    }

    /// The store's dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Target::Sqlite(_) => Dialect::Sqlite,
            Target::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The store as shown in messages (a URL without its password).
    pub fn name(&self) -> String {
        match self {
            Target::Sqlite(path) => path.display().to_string(),
            Target::Postgres(url) => redact(url),
        }
    }
}

/// `url` without the password of its user info.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

/// A value bound to a parameter or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// A list of texts (PostgreSQL only: a `text[]` parameter).
    TextList(Vec<String>),
}

impl Value {
    /// The integer, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The text, if it is some.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }
}

impl From<Option<&str>> for Value {
    fn from(text: Option<&str>) -> Value {
        text.map_or(Value::Null, |t| Value::Text(t.to_owned()))
    }
}

impl From<Option<i64>> for Value {
    fn from(n: Option<i64>) -> Value {
        n.map_or(Value::Null, Value::Int)
    }
}

/// What a statement did: rows changed, and the rows it returned (`RETURNING`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Affected {
    /// Rows inserted, updated or deleted (or returned).
    pub count: u64,
    /// The returned rows.
    pub rows: Vec<Vec<Value>>,
}

enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>, HashMap<String, postgres::Statement>),
}

/// A connection to a store.
pub struct Db {
    conn: Conn,
    name: String,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("name", &self.name).finish()
    }
}

fn pg_error(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error.to_string(),
    }
}

impl Db {
    /// Connects to an existing store (an SQLite file is never created).
    pub fn open(target: &Target) -> Result<Db, String> {
        let name = target.name();
        let conn = match target {
            Target::Sqlite(path) => {
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = rusqlite::Connection::open_with_flags(path, flags)
                    .map_err(|e| format!("cannot open the store {name}: {e}"))?;
                conn.busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .map_err(|e| format!("{name}: {e}"))?;
                Conn::Sqlite(conn)
            }
            Target::Postgres(url) => {
                let client = postgres::Client::connect(url, postgres::NoTls)
                    .map_err(|e| format!("cannot connect to the store {name}: {}", pg_error(&e)))?;
                Conn::Postgres(Box::new(client), HashMap::new())
            }
        };
        Ok(Db { conn, name })
    }

    /// The store's dialect.
    pub fn dialect(&self) -> Dialect {
        match self.conn {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(..) => Dialect::Postgres,
        }
    }

    /// An error message naming the store.
    pub fn error(&self, error: impl std::fmt::Display) -> String {
        format!("{}: {error}", self.name)
    }

    /// Runs statements without parameters (schema changes, `BEGIN`, `COMMIT`).
    pub fn script(&mut self, sql: &str) -> Result<(), String> {
        let result = match &mut self.conn {
            Conn::Sqlite(conn) => conn.execute_batch(sql).map_err(|e| e.to_string()),
            Conn::Postgres(client, _) => client.batch_execute(sql).map_err(|e| pg_error(&e)),
        };
        result.map_err(|e| self.error(e))
    }

    /// Starts a write transaction (SQLite takes the write lock at once, waiting up to
    /// [`SQLITE_BUSY_TIMEOUT`] for it).
    pub fn begin(&mut self) -> Result<(), String> {
        match self.dialect() {
            Dialect::Sqlite => self.script("BEGIN IMMEDIATE"),
            Dialect::Postgres => self.script("BEGIN"),
        }
    }

    /// Runs one statement with `values` bound to its parameters in order.
    pub fn run(&mut self, statement: &Statement, values: &[Value]) -> Result<Affected, String> {
        let result = match &mut self.conn {
            Conn::Sqlite(conn) => {
                sqlite_run(conn, &statement.sql, values).map_err(|e| e.to_string())
            }
            Conn::Postgres(client, cache) => pg_run(client, cache, &statement.sql, values),
        };
        result.map_err(|e| self.error(e))
    }

    /// Runs a statement of the store's dialect written with named parameters, binding each
    /// from `values`.
    pub fn run_named(
        &mut self,
        statement: &Statement,
        values: &dyn Fn(Param) -> Value,
    ) -> Result<Affected, String> {
        let bound: Vec<Value> = statement.params.iter().map(|p| values(*p)).collect();
        self.run(statement, &bound)
    }

    /// True when the store has a table `name`.
    pub fn has_table(&mut self, name: &str) -> Result<bool, String> {
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1"
            }
            Dialect::Postgres => {
                "SELECT count(*) FROM information_schema.tables WHERE table_name = $1 \
                 AND table_schema = ANY (current_schemas(false))"
            }
        };
        let statement = Statement {
            sql: sql.into(),
            params: vec![Param::Token],
        };
        let found = self.run(&statement, &[Value::Text(name.into())])?;
        Ok(found
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(Value::as_int)
            > Some(0))
    }

    /// Streams the rows of `statement` through a cursor, calling `row` with the values of the
    /// columns named in `columns` (NULL for a column the result lacks) until it returns
    /// false. Fails when the result lacks a column of `required`.
    pub fn stream(
        &mut self,
        statement: &Statement,
        values: &[Value],
        columns: &[&str],
        required: &[&str],
        row: &mut dyn FnMut(Vec<Value>) -> bool,
    ) -> Result<(), String> {
        let result = match &mut self.conn {
            Conn::Sqlite(conn) => sqlite_stream(conn, statement, values, columns, required, row),
            Conn::Postgres(client, _) => {
                pg_stream(client, statement, values, columns, required, row)
            }
        };
        result.map_err(|e| self.error(e))
    }
}

fn missing_columns(
    found: &[Option<usize>],
    columns: &[&str],
    required: &[&str],
) -> Result<(), String> {
    for (at, name) in columns.iter().enumerate() {
        if found[at].is_none() && required.contains(name) {
            return Err(format!(
                "the query must yield columns named {}",
                required.join(" and ")
            ));
        }
    }
    Ok(())
}

fn sqlite_value(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Text(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Real(r) => Value::Text(r.to_string()),
        ValueRef::Blob(_) | ValueRef::Null => Value::Null,
    }
}

fn sqlite_bind(statement: &mut rusqlite::Statement<'_>, values: &[Value]) -> rusqlite::Result<()> {
    for (at, value) in values.iter().enumerate() {
        match value {
            Value::Null => statement.raw_bind_parameter(at + 1, rusqlite::types::Null)?,
            Value::Int(n) => statement.raw_bind_parameter(at + 1, n)?,
            Value::Text(text) => statement.raw_bind_parameter(at + 1, text)?,
            Value::TextList(_) => {
                return Err(rusqlite::Error::InvalidParameterName(
                    "lists are bound in PostgreSQL only".into(),
                ));
            }
        }
    }
    Ok(())
}

fn sqlite_run(
    conn: &rusqlite::Connection,
    sql: &str,
    values: &[Value],
) -> rusqlite::Result<Affected> {
    let mut statement = conn.prepare_cached(sql)?;
    sqlite_bind(&mut statement, values)?;
    let columns = statement.column_count();
    if columns == 0 {
        let count = statement.raw_execute()?;
        return Ok(Affected {
            count: count as u64,
            rows: Vec::new(),
        });
    }
    let mut rows = statement.raw_query();
    let mut affected = Affected::default();
    while let Some(row) = rows.next()? {
        let values = (0..columns)
            .map(|at| row.get_ref(at).map(sqlite_value))
            .collect::<rusqlite::Result<_>>()?;
        affected.rows.push(values);
    }
    affected.count = affected.rows.len() as u64;
    Ok(affected)
}

fn sqlite_stream(
    conn: &rusqlite::Connection,
    statement: &Statement,
    values: &[Value],
    columns: &[&str],
    required: &[&str],
    row: &mut dyn FnMut(Vec<Value>) -> bool,
) -> Result<(), String> {
    let mut prepared = conn.prepare(&statement.sql).map_err(|e| e.to_string())?;
    let found: Vec<Option<usize>> = columns
        .iter()
        .map(|name| prepared.column_index(name).ok())
        .collect();
    missing_columns(&found, columns, required)?;
    sqlite_bind(&mut prepared, values).map_err(|e| e.to_string())?;
    let mut rows = prepared.raw_query();
    while let Some(current) = rows.next().map_err(|e| e.to_string())? {
        let values = found
            .iter()
            .map(|at| {
                at.and_then(|at| current.get_ref(at).ok())
                    .map_or(Value::Null, sqlite_value)
            })
            .collect();
        if !row(values) {
            break;
        }
    }
    Ok(())
}

/// `value` as the type PostgreSQL inferred for its parameter.
fn pg_param(value: &Value, ty: &Type) -> Result<Box<dyn ToSql + Sync>, String> {
    let int = |value: &Value| match value {
        Value::Int(n) => Ok(Some(*n)),
        Value::Text(text) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("{text:?} is not an integer")),
        Value::Null | Value::TextList(_) => Ok(None),
    };
    if let Value::TextList(list) = value {
        return match *ty {
            Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => Ok(Box::new(list.clone())),
            ref other => Err(format!("a list bound to a parameter of type {other}")),
        };
    }
    let boxed: Box<dyn ToSql + Sync> = match *ty {
        Type::INT8 => Box::new(int(value)?),
        Type::INT4 => Box::new(
            int(value)?
                .map(i32::try_from)
                .transpose()
                .map_err(|e| e.to_string())?,
        ),
        Type::INT2 => Box::new(
            int(value)?
                .map(i16::try_from)
                .transpose()
                .map_err(|e| e.to_string())?,
        ),
        Type::FLOAT8 => Box::new(int(value)?.map(|n| n as f64)),
        Type::FLOAT4 => Box::new(int(value)?.map(|n| n as f32)),
        Type::NUMERIC => {
            return Err("a parameter of type numeric: cast it, e.g. CAST(:now AS BIGINT)".into());
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Box::new(match value {
                Value::Null | Value::TextList(_) => None,
                Value::Int(n) => Some(n.to_string()),
                Value::Text(text) => Some(text.clone()),
            })
        }
        ref other => {
            return Err(format!(
                "a parameter of type {other}: cast it to BIGINT or TEXT in the template (e.g. to_timestamp(CAST(:now AS BIGINT)))"
            ));
        }
    };
    Ok(boxed)
}

fn pg_value(row: &postgres::Row, at: usize) -> Result<Value, String> {
    let ty = row.columns()[at].type_().clone();
    let error = |e: postgres::Error| pg_error(&e);
    Ok(match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(at).map_err(error)?.into(),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(at)
            .map_err(error)?
            .map(i64::from)
            .into(),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(at)
            .map_err(error)?
            .map(i64::from)
            .into(),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<String>>(at)
            .map_err(error)?
            .map_or(Value::Null, Value::Text),
        _ => Value::Null,
    })
}

fn pg_params(
    statement: &postgres::Statement,
    values: &[Value],
) -> Result<Vec<Box<dyn ToSql + Sync>>, String> {
    statement
        .params()
        .iter()
        .zip(values)
        .enumerate()
        .map(|(at, (ty, value))| {
            pg_param(value, ty).map_err(|e| format!("parameter {}: {e}", at + 1))
        })
        .collect()
}

fn pg_run(
    client: &mut postgres::Client,
    cache: &mut HashMap<String, postgres::Statement>,
    sql: &str,
    values: &[Value],
) -> Result<Affected, String> {
    let statement = match cache.get(sql) {
        Some(statement) => statement.clone(),
        None => {
            let statement = client.prepare(sql).map_err(|e| pg_error(&e))?;
            cache.insert(sql.to_owned(), statement.clone());
            statement
        }
    };
    let params = pg_params(&statement, values)?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
    if statement.columns().is_empty() {
        let count = client
            .execute(&statement, &refs)
            .map_err(|e| pg_error(&e))?;
        return Ok(Affected {
            count,
            rows: Vec::new(),
        });
    }
    let rows = client.query(&statement, &refs).map_err(|e| pg_error(&e))?;
    let rows: Vec<Vec<Value>> = rows
        .iter()
        .map(|row| (0..row.len()).map(|at| pg_value(row, at)).collect())
        .collect::<Result<_, _>>()?;
    Ok(Affected {
        count: rows.len() as u64,
        rows,
    })
}

fn pg_stream(
    client: &mut postgres::Client,
    statement: &Statement,
    values: &[Value],
    columns: &[&str],
    required: &[&str],
    row: &mut dyn FnMut(Vec<Value>) -> bool,
) -> Result<(), String> {
    // A cursor lives in a transaction; a read-only one never blocks the writer.
    let mut tx = client.transaction().map_err(|e| pg_error(&e))?;
    tx.batch_execute("SET TRANSACTION READ ONLY")
        .map_err(|e| pg_error(&e))?;
    let prepared = tx.prepare(&statement.sql).map_err(|e| pg_error(&e))?;
    let found: Vec<Option<usize>> = columns
        .iter()
        .map(|name| prepared.columns().iter().position(|c| c.name() == *name))
        .collect();
    missing_columns(&found, columns, required)?;
    let params = pg_params(&prepared, values)?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
    let portal = tx.bind(&prepared, &refs).map_err(|e| pg_error(&e))?;
    loop {
        let rows = tx
            .query_portal(&portal, PG_FETCH)
            .map_err(|e| pg_error(&e))?;
        if rows.is_empty() {
            break;
        }
        for current in &rows {
            let values = found
                .iter()
                .map(|at| match at {
                    Some(at) => pg_value(current, *at),
                    None => Ok(Value::Null),
                })
                .collect::<Result<_, _>>()?;
            if !row(values) {
                return tx.commit().map_err(|e| pg_error(&e));
            }
        }
    }
    tx.commit().map_err(|e| pg_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths_and_shown_without_passwords() {
        let pg = Target::parse(Path::new("postgres://push:s3cret@127.0.0.1:5433/tokens"));
        assert_eq!(pg.dialect(), Dialect::Postgres);
        assert_eq!(pg.name(), "postgres://push@127.0.0.1:5433/tokens");
        let file = Target::parse(Path::new("devices.sqlite"));
        assert_eq!(file.dialect(), Dialect::Sqlite);
    }

    #[test]
    fn sqlite_statements_return_counts_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t(a TEXT, b INTEGER)")
            .unwrap();
        let mut db = Db::open(&Target::Sqlite(path)).unwrap();
        let insert = Statement {
            sql: "INSERT INTO t VALUES (?1, ?2)".into(),
            params: vec![Param::Token, Param::Now],
        };
        for n in 0..3 {
            let affected = db
                .run(&insert, &[Value::Text(format!("x{n}")), Value::Int(n)])
                .unwrap();
            assert_eq!(affected.count, 1);
        }
        db.run(&insert, &[Value::Text("y".into()), Value::Null])
            .unwrap();
        let delete = Statement {
            sql: "DELETE FROM t WHERE b >= ?1 RETURNING b".into(),
            params: vec![Param::Now],
        };
        let affected = db.run(&delete, &[Value::Int(1)]).unwrap();
        assert_eq!(affected.count, 2);
        assert!(db.has_table("t").unwrap());
        assert!(!db.has_table("u").unwrap());
        let mut seen = Vec::new();
        let select = Statement {
            sql: "SELECT a AS token FROM t".into(),
            params: vec![],
        };
        db.stream(
            &select,
            &[],
            &["token", "platform"],
            &["token"],
            &mut |row| {
                seen.push(row);
                true
            },
        )
        .unwrap();
        assert_eq!(
            seen,
            [
                vec![Value::Text("x0".into()), Value::Null],
                vec![Value::Text("y".into()), Value::Null]
            ]
        );
        let error = db
            .stream(&select, &[], &["platform"], &["platform"], &mut |_| true)
            .unwrap_err();
        assert!(error.contains("columns named platform"), "{error}");
    }
}
