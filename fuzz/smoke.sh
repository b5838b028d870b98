#!/usr/bin/env bash
# Short, bounded fuzzing run of every cargo-fuzz target (the test command's smoke; docs/hardening.md has
# the long-run command). Each target first replays its committed regression inputs
# (fuzz/regressions/<target>/) and seeds (fuzz/seeds/<target>/), then fuzzes for its share of the time.
#
# Usage: fuzz/smoke.sh [TARGET...]
#   FUZZ_SECONDS   total fuzzing time shared by the targets (default 60; at least 5 s per target)
#   FUZZ_RSS_MB    memory limit per fuzzing process (default 2048; AddressSanitizer needs room)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Exits non-zero when
# a target crashes, fails an invariant, hangs past 10 s on one input or cannot be built; the failing
# input is kept under fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "$0")"
total=${FUZZ_SECONDS:-60}
rss_mb=${FUZZ_RSS_MB:-2048}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/smoke.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/smoke.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz/smoke.sh: no fuzz targets found" >&2
    exit 2
fi
per=$(( total / ${#targets[@]} ))
[ "$per" -ge 5 ] || per=5

# cargo-fuzz picks up CARGO_TARGET_DIR; keep its builds in fuzz/target so they never mix with others.
unset CARGO_TARGET_DIR
logs=target/smoke-logs
mkdir -p "$logs"
echo "fuzz/smoke.sh: building the targets"
if ! timeout 1800 cargo +nightly fuzz build >/dev/null 2>"$logs/build.log"; then
    cat "$logs/build.log" >&2
    echo "fuzz/smoke.sh: cargo fuzz build failed" >&2
    exit 1
fi

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    flags=(-rss_limit_mb="$rss_mb" -timeout=10 -print_final_stats=0)
    dict=dicts/$t.dict
    [ -f "$dict" ] || dict=dicts/json.dict
    flags+=(-dict="$dict")
    if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
        echo "fuzz/smoke.sh: $t: replaying $(find "regressions/$t" -type f | wc -l) regression inputs"
        if ! timeout 300 cargo +nightly fuzz run "$t" "regressions/$t"/* -- "${flags[@]}" >"$logs/$t.log" 2>&1; then
            tail -40 "$logs/$t.log" >&2
            failed+=("$t (regression replay)")
            continue
        fi
    fi
    echo "fuzz/smoke.sh: $t: fuzzing for ${per}s"
    if timeout $(( per + 300 )) cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        "${flags[@]}" -max_total_time="$per" >"$logs/$t.log" 2>&1; then
        grep -E '^Done [0-9]+ runs' "$logs/$t.log" | sed "s/^/fuzz\/smoke.sh: $t: /" || true
    else
        tail -40 "$logs/$t.log" >&2
        echo "fuzz/smoke.sh: $t FAILED; log in fuzz/$logs/$t.log, input under fuzz/artifacts/$t/" >&2
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz/smoke.sh: failing targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz/smoke.sh: all ${#targets[@]} targets ran clean (${per}s each)"
