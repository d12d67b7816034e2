#!/usr/bin/env bash
# `make fuzz`: runs each libFuzzer target SECONDS on fuzz/corpus/<name>/ and
# prints one line per target (executions, exec/s, seconds). New inputs go to
# WORK/scratch/<name>/, never into the committed corpus. A crash, leak,
# timeout or out-of-memory input is copied to fuzz/crashes/<name>/ and the
# run fails (after the other targets have run).
# Usage: fuzz/run.sh WORK SECONDS MAX_LEN NAME...
set -uo pipefail

work=$1 secs=$2 max_len=$3
shift 3
mkdir -p "$work/logs"
summary=$work/summary.txt
: >"$summary"
fail=0
for name in "$@"; do
    scratch=$work/scratch/$name
    artifacts=$work/artifacts/$name
    log=$work/logs/$name.log
    rm -rf "$artifacts"
    mkdir -p "$scratch" "$artifacts" "fuzz/corpus/$name" "fuzz/crashes/$name"
    echo "== fuzz_$name: ${secs} s on fuzz/corpus/$name (log: $log)"
    start=$(date +%s.%N)
    "$work/bin/fuzz_$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "$scratch" "fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [[ -z $runs ]]; then
        # "Done N runs in S second(s)", else the last status line "#N ...".
        runs=$(sed -n 's/^Done \([0-9]*\) runs in.*/\1/p' "$log" | tail -n 1)
    fi
    if [[ -z $runs ]]; then
        runs=$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)
    fi
    runs=${runs:-0}
    elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    eps=$(awk -v n="$runs" -v s="$elapsed" 'BEGIN { printf "%d", (s > 0 ? n / s : 0) }')
    crashes=0
    for f in "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* "$artifacts"/oom-*; do
        [[ -e $f ]] || continue
        cp -f "$f" "fuzz/crashes/$name/"
        echo "   crash input saved: fuzz/crashes/$name/$(basename "$f")"
        crashes=$((crashes + 1))
    done
    if [[ $rc -ne 0 && $crashes -eq 0 ]]; then
        echo "   fuzz_$name exited with status $rc without a crash input; see $log"
        crashes=1
    fi
    result=ok
    if [[ $crashes -gt 0 ]]; then
        result=FAILED
        fail=1
        grep -m 3 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | sed 's/^/   /'
    fi
    printf '%-10s %12s executions %8s exec/s %7s s  %s\n' "$name" "$runs" "$eps" "$elapsed" \
        "$result" | tee -a "$summary"
done
echo "== summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null))"
cat "$summary"
exit $fail
