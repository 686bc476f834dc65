#!/usr/bin/env bash
# The queue's throughput: `push send` and 1, 2, 4 `push worker`s sending the same devices
# (half iOS over APNs HTTP/2, half Android over FCM) to the mocks of `push mock`, with a
# simulated round trip; Redis' own CPU from /proc. The figures are in BENCHMARKS.md.
#   cargo build -p push-cli --release && push-cli/bench/queue.sh
# Settings (environment): DEVICES (1000000), LATENCY ms (40), WORKERS ("1 2 4"), JOBS per
# worker (20), BATCH devices per job (500), ROUNDS (1), PUSH (target/release/push).
set -euo pipefail
cd "$(dirname "$0")/../.."
push=${PUSH:-target/release/push}
devices=${DEVICES:-1000000}
latency=${LATENCY:-40}
workers=${WORKERS:-1 2 4}
jobs=${JOBS:-20}
batch=${BATCH:-500}
rounds=${ROUNDS:-1}
work=$(mktemp -d)
chmod 755 "$work"
mock=
cleanup() {
  set +e
  [ -n "$mock" ] && kill "$mock" 2>/dev/null
  .ci/redis stop "$work/redis"
  rm -rf "$work"
}
trap cleanup EXIT

url=$(.ci/redis start "$work/redis")
redis_pid=$(cat "$work/redis/redis.pid")
# CPU seconds redis-server used so far (utime + stime).
redis_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$redis_pid/stat"
}
now() { date +%s.%N; }
# CPU seconds (user + system) of the finished children of this shell so far, into $1
# (`times` must run in this shell, not in a subshell).
children_cpu() {
  times >"$work/times"
  printf -v "$1" '%s' "$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$work/times")"
}

awk -v n="$devices" 'BEGIN { for (i = 0; i < n / 2; i++) printf "ios %064x\nandroid fcm-token-%d\n", i, i }' \
  >"$work/devices.txt"

start_mock() {
  if [ -n "$mock" ]; then kill "$mock" 2>/dev/null; wait "$mock" 2>/dev/null || true; fi
  rm -rf "$work/mock"
  "$push" mock --for 7200 --latency "$latency" --dir "$work/mock" >"$work/mock.out" &
  mock=$!
  for _ in $(seq 300); do grep -q '^try FCM:' "$work/mock.out" && break; sleep 0.1; done
  providers="$(grep '^try HTTP/2:' "$work/mock.out" | sed 's/^try HTTP\/2: push send --devices FILE --title Hi --body Hello //')"
  providers="$providers $(grep '^try FCM:' "$work/mock.out" | sed 's/^try FCM: push send --devices FILE --title Hi --body Hello //')"
}

echo "push-cli/bench/queue.sh: $devices devices, latency $latency ms, --jobs $jobs --batch $batch, $(nproc) cores"
for round in $(seq "$rounds"); do
  # A fresh mock for each run: its delivery log grows with every device.
  start_mock
  started=$(now)
  children_cpu own0
  # shellcheck disable=SC2086 # $providers is a list of arguments
  "$push" send --devices "$work/devices.txt" --title Hi --body Hello --quiet $providers
  send_s=$(echo "$(now) - $started" | bc -l)
  children_cpu own1
  send_cpu=$(echo "$own1 - $own0" | bc -l)
  send_rate=$(echo "$devices / $send_s" | bc -l)
  printf 'round %d  push send          %8.0f/s  (%.2f s); push CPU %.2f us/device\n' "$round" "$send_rate" "$send_s" \
    "$(echo "1000000 * $send_cpu / $devices" | bc -l)"
  for w in $workers; do
    start_mock
    redis-cli -u "$url" FLUSHALL >/dev/null
    "$push" enqueue --redis "$url" --devices "$work/devices.txt" --title Hi --body Hello \
      --batch "$batch" >/dev/null 2>&1
    cpu0=$(redis_cpu)
    children_cpu own0
    started=$(now)
    pids=()
    for i in $(seq "$w"); do
      # shellcheck disable=SC2086
      "$push" worker --redis "$url" --exit-when-idle --jobs "$jobs" $providers 2>"$work/worker$i.err" &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    elapsed=$(echo "$(now) - $started" | bc -l)
    cpu=$(echo "$(redis_cpu) - $cpu0" | bc -l)
    children_cpu own1
    workers_cpu=$(echo "$own1 - $own0" | bc -l)
    per=""
    for i in $(seq "$w"); do
      results=$(sed -n 's/^push: worker .*: [0-9]* jobs, \([0-9]*\) results$/\1/p' "$work/worker$i.err")
      per="$per $(printf '%.0f' "$(echo "$results / $elapsed" | bc -l)")"
    done
    rate=$(echo "$devices / $elapsed" | bc -l)
    printf 'round %d  %d worker(s)       %8.0f/s  (%.2f s) = %.2fx push send; per worker/s:%s; workers CPU %.2f us/device; redis-server CPU %.2f s = %.0f%% of a core, %.2f us/device\n' \
      "$round" "$w" "$rate" "$elapsed" "$(echo "$rate / $send_rate" | bc -l)" "$per" \
      "$(echo "1000000 * $workers_cpu / $devices" | bc -l)" "$cpu" \
      "$(echo "100 * $cpu / $elapsed" | bc -l)" "$(echo "1000000 * $cpu / $devices" | bc -l)"
  done
done
