//! Statement templates with named parameters (`:token`, `:new_token`, ...), turned into the
//! positional placeholders of a dialect (`?1` for SQLite, `$1` for PostgreSQL). Values are
//! always bound as parameters, never spliced into the text.
//!
//! The scanner knows SQL's quoting: `'strings'` (with `''`), `"identifiers"`, `-- comments`,
//! `/* comments */` and PostgreSQL's `::` casts are left alone. A template may hold several
//! statements separated by `;`; they run in order.

use std::fmt;

/// The SQL dialect of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: `?N` placeholders.
    Sqlite,
    /// PostgreSQL: `$N` placeholders.
    Postgres,
}

/// A parameter a template may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Param {
    /// `:token`: the token sent (or journaled).
    Token,
    /// `:new_token`: the canonical token that replaces it.
    NewToken,
    /// `:platform`: `ios` or `android`.
    Platform,
    /// `:unregistered_at`: when the provider last confirmed the token invalid (UNIX seconds;
    /// NULL when it did not say).
    UnregisteredAt,
    /// `:updated_at`: a deleted row's `updated_at` as journaled (restore only).
    UpdatedAt,
    /// `:reason`: the provider's reason (`BadDeviceToken`, `UNREGISTERED`), or NULL.
    Reason,
    /// `:now`: the current time (UNIX seconds).
    Now,
    /// `:run`: the run id (internal: resuming).
    Run,
}

impl Param {
    const ALL: [Param; 8] = [
        Param::Token,
        Param::NewToken,
        Param::Platform,
        Param::UnregisteredAt,
        Param::UpdatedAt,
        Param::Reason,
        Param::Now,
        Param::Run,
    ];

    /// The name as written in a template, without its colon.
    pub fn name(self) -> &'static str {
        match self {
            Param::Token => "token",
            Param::NewToken => "new_token",
            Param::Platform => "platform",
            Param::UnregisteredAt => "unregistered_at",
            Param::UpdatedAt => "updated_at",
            Param::Reason => "reason",
            Param::Now => "now",
            Param::Run => "run",
        }
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ":{}", self.name())
    }
}

/// One statement: its text with positional placeholders, and the parameter of each position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The SQL, placeholders numbered from 1.
    pub sql: String,
    /// The parameter bound at each position.
    pub params: Vec<Param>,
}

/// Parses `template` for `dialect`, accepting only the parameters in `allowed`; `what`
/// names the option in errors.
pub fn parse(
    template: &str,
    dialect: Dialect,
    allowed: &[Param],
    what: &str,
) -> Result<Vec<Statement>, String> {
    let mut statements = Vec::new();
    let mut current = Statement {
        sql: String::new(),
        params: Vec::new(),
    };
    let chars: Vec<char> = template.chars().collect();
    let mut i = 0;
    let copy_until = |out: &mut String, i: &mut usize, end: &dyn Fn(&[char], usize) -> bool| {
        while *i < chars.len() && !end(&chars, *i) {
            out.push(chars[*i]);
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' | '"' => {
                current.sql.push(c);
                i += 1;
                loop {
                    copy_until(&mut current.sql, &mut i, &|s, j| s[j] == c);
                    if i >= chars.len() {
                        return Err(format!("{what}: unterminated {c}quote{c}"));
                    }
                    current.sql.push(c);
                    i += 1;
                    // A doubled quote is an escaped one.
                    if chars.get(i) == Some(&c) {
                        current.sql.push(c);
                        i += 1;
                    } else {
                        break;
                    }
                }
            }
            '-' if next == Some('-') => copy_until(&mut current.sql, &mut i, &|s, j| s[j] == '\n'),
            '/' if next == Some('*') => {
                current.sql.push_str("/*");
                i += 2;
                copy_until(&mut current.sql, &mut i, &|s, j| {
                    s[j] == '*' && s.get(j + 1) == Some(&'/')
                });
                if i >= chars.len() {
                    return Err(format!("{what}: unterminated /* comment"));
                }
                current.sql.push_str("*/");
                i += 2;
            }
            ':' if next == Some(':') => {
                current.sql.push_str("::");
                i += 2;
            }
            ':' if next.is_some_and(|n| n.is_ascii_alphabetic() || n == '_') => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_')
                {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                let param = Param::ALL
                    .into_iter()
                    .find(|p| p.name() == name && allowed.contains(p))
                    .ok_or_else(|| {
                        let names: Vec<String> = allowed.iter().map(Param::to_string).collect();
                        format!(
                            "{what}: unknown parameter :{name} (this template takes {})",
                            names.join(", ")
                        )
                    })?;
                let position = match current.params.iter().position(|p| *p == param) {
                    Some(at) => at + 1,
                    None => {
                        current.params.push(param);
                        current.params.len()
                    }
                };
                match dialect {
                    Dialect::Sqlite => current.sql.push_str(&format!("?{position}")),
                    Dialect::Postgres => current.sql.push_str(&format!("${position}")),
                }
                i = end;
            }
            '?' | '$' if next.is_some_and(|n| n.is_ascii_digit()) || c == '?' => {
                return Err(format!(
                    "{what}: use named parameters ({}), not positional ones",
                    allowed
                        .iter()
                        .map(Param::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            ';' => {
                if !current.sql.trim().is_empty() {
                    statements.push(std::mem::replace(
                        &mut current,
                        Statement {
                            sql: String::new(),
                            params: Vec::new(),
                        },
                    ));
                } else {
                    current.sql.clear();
                }
                i += 1;
            }
            _ => {
                current.sql.push(c);
                i += 1;
            }
        }
    }
    if !current.sql.trim().is_empty() {
        statements.push(current);
    }
    if statements.is_empty() {
        return Err(format!("{what}: the template is empty"));
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Param] = &Param::ALL;

    #[test]
    fn named_parameters_become_positions_per_dialect() {
        let sql = "UPDATE t SET v = :new_token, at = :now WHERE v = :token AND :now > 0";
        let sqlite = parse(sql, Dialect::Sqlite, ALL, "t").unwrap();
        assert_eq!(
            sqlite,
            [Statement {
                sql: "UPDATE t SET v = ?1, at = ?2 WHERE v = ?3 AND ?2 > 0".into(),
                params: vec![Param::NewToken, Param::Now, Param::Token],
            }]
        );
        let pg = parse(sql, Dialect::Postgres, ALL, "t").unwrap();
        assert_eq!(
            pg[0].sql,
            "UPDATE t SET v = $1, at = $2 WHERE v = $3 AND $2 > 0"
        );
    }

    #[test]
    fn quotes_comments_and_casts_are_left_alone() {
        let sql = "SELECT ':token', \"a:b\", 'it''s :x' -- :nope\n, x::text /* :no; */ FROM t WHERE a = :token";
        let parsed = parse(sql, Dialect::Postgres, &[Param::Token], "t").unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].params, [Param::Token]);
        assert!(parsed[0].sql.ends_with("a = $1"));
        assert!(parsed[0].sql.contains("':token'"));
        assert!(parsed[0].sql.contains("x::text"));
    }

    #[test]
    fn statements_split_at_semicolons_with_their_own_positions() {
        let parsed = parse(
            "DELETE FROM a WHERE t = :token; UPDATE b SET t = :new_token WHERE t = :token;",
            Dialect::Sqlite,
            ALL,
            "t",
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].sql.trim(), "UPDATE b SET t = ?1 WHERE t = ?2");
    }

    #[test]
    fn unknown_or_positional_parameters_are_refused() {
        let error = parse(
            "DELETE FROM a WHERE t = :tokn",
            Dialect::Sqlite,
            &[Param::Token],
            "--on-invalid",
        )
        .unwrap_err();
        assert!(error.contains("unknown parameter :tokn"), "{error}");
        assert!(error.contains(":token"), "{error}");
        let error = parse(
            "DELETE FROM a WHERE t = :new_token",
            Dialect::Sqlite,
            &[Param::Token],
            "x",
        )
        .unwrap_err();
        assert!(error.contains(":new_token"), "{error}");
        assert!(parse("DELETE FROM a WHERE t = ?", Dialect::Sqlite, ALL, "x").is_err());
        assert!(parse("DELETE FROM a WHERE t = $1", Dialect::Postgres, ALL, "x").is_err());
        assert!(parse("SELECT 'open", Dialect::Sqlite, ALL, "x").is_err());
        assert!(parse(" ; ", Dialect::Sqlite, ALL, "x").is_err());
    }
}
