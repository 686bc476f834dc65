//! `push store`: work on a token store itself; today `push store restore --since TIME`,
//! which undoes the journaled deletions and replacements made since then.

use crate::cli::{RestoreArgs, StoreArgs, StoreCommand};
use crate::db::{Db, Target};
use crate::journal;
use crate::main_error::Failure;
use crate::store;
use crate::store_schema::{Custom, Schema};

/// `push store` with its arguments.
pub fn command(args: StoreArgs) -> Result<(), Failure> {
    match args.command {
        StoreCommand::Restore(args) => restore(args),
    }
}

fn restore(args: RestoreArgs) -> Result<(), Failure> {
    let now = store::now();
    let since = parse_time(&args.since, now).map_err(Failure::Usage)?;
    let target = Target::parse(&args.db);
    let custom = Custom {
        on_restore_invalid: args.on_restore_invalid,
        on_restore_new_token: args.on_restore_new_token,
        ..Custom::default()
    };
    let schema = Schema::new(target.dialect(), &custom).map_err(Failure::Usage)?;
    let mut db = Db::open(&target).map_err(Failure::Usage)?;
    if !journal::exists(&mut db).map_err(Failure::Run)? {
        return Err(Failure::Usage(db.error(
            "no journal (push_journal) in the store: nothing was ever changed by push",
        )));
    }
    let restored =
        journal::restore(&mut db, &schema, since, now, args.dry_run).map_err(Failure::Run)?;
    let verb = if args.dry_run { "would put" } else { "put" };
    println!(
        "{verb} back {} deleted rows and {} replaced tokens changed since {since} (UNIX seconds); {} changes could not be undone (the token is stored again, or its replacement is gone)",
        restored.deleted, restored.replaced, restored.skipped
    );
    Ok(())
}

/// A point in time, in UNIX seconds: UNIX seconds, a duration ago (`90s`, `30m`, `12h`,
/// `7d`), or a UTC date `YYYY-MM-DD` with an optional `THH:MM[:SS]` and `Z`.
pub fn parse_time(text: &str, now: i64) -> Result<i64, String> {
    let bad = || {
        format!(
            "--since {text:?}: give UNIX seconds, a duration ago (30m, 12h, 7d) or a UTC time (2025-01-31T12:00:00Z)"
        )
    };
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    let units = [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)];
    for (suffix, unit) in units {
        if let Some(number) = text.strip_suffix(suffix)
            && let Ok(n) = number.parse::<i64>()
        {
            return Ok(now - n.checked_mul(unit).ok_or_else(bad)?);
        }
    }
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = text.split_once('T').unwrap_or((text, "00:00:00"));
    let numbers =
        |part: &str, sep| -> Option<Vec<i64>> { part.split(sep).map(|n| n.parse().ok()).collect() };
    let date = numbers(date, '-').ok_or_else(bad)?;
    let time = numbers(time, ':').ok_or_else(bad)?;
    let ([year, month, day], [hour, minute, rest @ ..]) = (date.as_slice(), time.as_slice()) else {
        return Err(bad());
    };
    let second = match rest {
        [] => 0,
        [second] => *second,
        _ => return Err(bad()),
    };
    let valid = (1..=12).contains(month)
        && (1..=31).contains(day)
        && (0..24).contains(hour)
        && (0..60).contains(minute)
        && (0..61).contains(&second);
    if !valid {
        return Err(bad());
    }
    Ok(days_from_civil(*year, *month, *day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_form() {
        assert_eq!(parse_time("1700000000", 0), Ok(1_700_000_000));
        assert_eq!(parse_time("30m", 10_000), Ok(10_000 - 1800));
        assert_eq!(parse_time("2d", 1_000_000), Ok(1_000_000 - 172_800));
        assert_eq!(parse_time("1970-01-01", 5), Ok(0));
        assert_eq!(parse_time("2023-11-14T22:13:20Z", 0), Ok(1_700_000_000));
        assert_eq!(parse_time("2000-03-01T00:00", 0), Ok(951_868_800));
        for bad in ["yesterday", "2023-13-01", "2023-01-01T25:00", "5w", ""] {
            assert!(parse_time(bad, 0).is_err(), "{bad}");
        }
    }
}
