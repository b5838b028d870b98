# shellcheck shell=bash
# shellcheck disable=SC2154  # tmp and limit are the sourcing script's
# Sourced by tests/gvisor/run.sh and tests/gvisor/pods2024.sh: one sandbox's result into the stage's
# totals. `tally NAME RC` prints $tmp/NAME.out, reads its last `RESULT <passed> <failed>` line (none
# means one failure: a time-out for RC 124 or 137, else an early end), shows the tail of
# $tmp/NAME.err when something failed, and adds to total_pass, total_fail and the summary `lines`.
tally() {
    local name=$1 rc=$2 result pass fail
    cat "$tmp/$name.out" 2>/dev/null
    result=$(grep '^RESULT ' "$tmp/$name.out" 2>/dev/null | tail -n 1)
    if [ -z "$result" ]; then
        pass=0 fail=1
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
            echo "FAIL the sandbox did not finish within ${limit}s"
        else
            echo "FAIL the sandbox ended without a result (runsc exit status $rc)"
        fi
    else
        read -r _ pass fail <<<"$result"
    fi
    if [ "$fail" != 0 ] && [ -s "$tmp/$name.err" ]; then
        echo "     stderr of runsc (last lines):"
        tail -n 15 "$tmp/$name.err" | sed 's/^/     | /'
    fi
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
    lines+=("$(printf '%-15s %3d passed, %3d failed' "$name" "$pass" "$fail")")
}
