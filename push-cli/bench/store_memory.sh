#!/usr/bin/env bash
# Peak RSS and rate of `push send --db` reading 100,000 and 1,000,000 rows, from PostgreSQL
# and from SQLite, sending to the FCM mock of `push mock`. The figures are in BENCHMARKS.md.
#   export PUSH_TEST_POSTGRES_URL=$(.ci/postgres start /tmp/push-pg)
#   cargo build -p push-cli --release && push-cli/bench/store_memory.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
push=${PUSH:-target/release/push}
url=${PUSH_TEST_POSTGRES_URL:?start a server: export PUSH_TEST_POSTGRES_URL=\$(.ci/postgres start DIR)}
work=$(mktemp -d)
"$push" mock --for 3600 --dir "$work/mock" >"$work/mock.out" &
mock=$!
trap 'kill $mock 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do grep -q '^try FCM:' "$work/mock.out" && break; sleep 0.1; done
fcm=$(grep '^try FCM:' "$work/mock.out" | sed 's/^try FCM: push send --devices FILE --title Hi --body Hello //')

measure() { # label, --db argument
  # shellcheck disable=SC2086 # $fcm is a list of arguments
  /usr/bin/time -f "%M" -o "$work/rss" "$push" send --db "$2" --title Hi --body Hello $fcm 2>"$work/err"
  printf '%-28s peak RSS %7d KiB   %s\n' "$1" "$(cat "$work/rss")" "$(grep ' devices in ' "$work/err")"
}

for n in 100000 1000000; do
  name="push_bench_$n"
  psql -q "$url" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
  db="${url%/*}/$name"
  psql -q "$db" -c "CREATE TABLE devices(platform TEXT NOT NULL, token TEXT PRIMARY KEY, updated_at BIGINT)" \
    -c "INSERT INTO devices SELECT 'android', 'fcm-' || n, NULL FROM generate_series(1, $n) AS n"
  measure "postgres $n rows" "$db"
  sqlite3 "$work/$n.sqlite" "CREATE TABLE devices(platform TEXT NOT NULL, token TEXT PRIMARY KEY, updated_at INTEGER);
    WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $n)
    INSERT INTO devices SELECT 'android', 'fcm-' || n, NULL FROM s;"
  measure "sqlite $n rows" "$work/$n.sqlite"
done
