#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and prints each target's final
# libFuzzer stats line. Uses nightly (with AddressSanitizer) when it is installed, otherwise
# stable without a sanitizer (`-s none`). New inputs go to fuzz/target/corpus/<target>/
# (ignored by git); the committed seeds in fuzz/corpus/<target>/ are only read.
# Exits non-zero when a target crashed; the input is in fuzz/artifacts/<target>/.
set -uo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
targets=(frame error_response feedback gateway gcm_response apns_http2_response fcm_response fcm_token_response webpush_subscription webpush_response apns_broadcast_response apns_broadcast_request)

if cargo +nightly --version >/dev/null 2>&1 && cargo +nightly fuzz build >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz run)
  echo "== toolchain: nightly (AddressSanitizer)"
else
  fuzz=(cargo fuzz run -s none)
  echo "== toolchain: stable, no sanitizer (-s none)"
fi

mkdir -p target/logs
failed=()
for target in "${targets[@]}"; do
  mkdir -p "target/corpus/$target"
  log="target/logs/$target.log"
  echo "== $target: ${seconds}s"
  "${fuzz[@]}" "$target" "target/corpus/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
  status=$?
  # The last progress line ("#N DONE cov: ... exec/s: ... rss: ...") and the run count.
  grep -E '^#[0-9]+' "$log" | tail -n 1
  grep -E '^Done [0-9]+ runs' "$log" | tail -n 1
  if [ "$status" -ne 0 ]; then
    echo "!! $target failed (exit $status); see fuzz/$log"
    grep -E 'panicked at|SUMMARY|Test unit written to' "$log" | head -n 5
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "== failed: ${failed[*]}"
  exit 1
fi
echo "== all ${#targets[@]} targets ran ${seconds}s without a crash"
