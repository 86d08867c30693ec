#!/usr/bin/env bash
# Fuzzes every target for a bounded time each: each plugin's request reading (env, stdin,
# CNI_ARGS, prevResult of every version) and the DNS sidecar's control messages (fuzz/), and
# the sidecar's DNS message path (dns/fuzz). Prints one line of figures per target and exits
# non-zero if any target crashed, naming the input that did it.
#   scripts/fuzz.sh                         # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh bridge portmap
#   FUZZ_UPDATE_CORPUS=1 scripts/fuzz.sh    # then keep what reaches new code in fuzz/corpus
#   FUZZ_UPDATE_CORPUS=rebuild scripts/fuzz.sh  # then minimize fuzz/corpus anew (all of it)
# A crash becomes a regression: fix it, copy the input into fuzz/regressions/<target>/ (which
# `cargo test` replays, as it does fuzz/corpus), and write a unit test next to the fix.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
plugin_targets=(bandwidth bridge dnsname firewall host-local ipvlan loopback macvlan portmap ptp tuning)
all_targets=("${plugin_targets[@]}" control message)
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=("${all_targets[@]}")
fi

# libFuzzer's instrumentation needs nightly; rust-toolchain.toml pins stable for the rest.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "== installing the nightly toolchain (libFuzzer needs it)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

# Debug assertions on, so that an arithmetic overflow panics as it does in a debug build;
# no sanitizer: what the targets reach is safe Rust (our parsing, serde_json, hickory), where
# a bug shows as a panic, and without AddressSanitizer each target runs several times as
# many inputs in its time.
build_flags=(--debug-assertions --sanitizer none)
# Inputs up to 8 KiB: a config with a long prevResult is a few KiB.
fuzz_flags=(-max_len=8192 -max_total_time="$seconds" -print_final_stats=1)

# Adds to fuzz/corpus/<target> the inputs of the working corpus that reach code the
# checked-in ones (with fuzz/corpus/common for a plugin) do not: libFuzzer's merge, on
# edges alone (-use_counters=0: how often an edge runs does not count), so that the
# checked-in corpus grows only with new coverage and stays small.
update_corpus() {
    local target=$1 work=$2 base bin
    bin="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release/$target"
    base=$(mktemp -d)
    cp "fuzz/corpus/$target"/* "$base"/ 2>/dev/null || true
    if [ "$target" != control ]; then
        cp fuzz/corpus/common/* "$base"/
    fi
    local before
    before=$(mktemp)
    ls "$base" >"$before"
    "$bin" -merge=1 -use_counters=0 -max_len=8192 "$base" "$work"
    # libFuzzer names what it adds by its SHA-1: those not there before are new.
    for f in "$base"/*; do
        if ! grep -qxF "$(basename "$f")" "$before"; then
            cp "$f" "fuzz/corpus/$target/"
        fi
    done
    rm -rf "$base" "$before"
}

# Minimizes the whole checked-in corpus anew from itself and the working corpora: what
# the plugins' shared reading covers into fuzz/corpus/common (merged with the loopback
# target, which reads nothing of its own), then per plugin only what adds to it, and
# control's apart. Additions over many runs leave inputs whose edges later ones cover too;
# this drops them, at the price of a diff touching most files.
rebuild_corpus() {
    local bins all common t base
    bins="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
    (cd fuzz && cargo +nightly fuzz build "${build_flags[@]}")
    all=$(mktemp -d)
    common=$(mktemp -d)
    for t in "${plugin_targets[@]}" common; do
        cp fuzz/corpus/"$t"/* fuzz/target/work-corpus/"$t"/* "$all"/ 2>/dev/null || true
    done
    "$bins/loopback" -merge=1 -use_counters=0 -max_len=8192 "$common" "$all"
    for t in "${plugin_targets[@]}"; do
        base=$(mktemp -d)
        cp "$common"/* "$base"/
        mkdir -p "$all.$t"
        cp fuzz/corpus/"$t"/* fuzz/target/work-corpus/"$t"/* "$all.$t"/ 2>/dev/null || true
        "$bins/$t" -merge=1 -use_counters=0 -max_len=8192 "$base" "$all.$t"
        rm -rf "fuzz/corpus/$t" "$all.$t"
        mkdir -p "fuzz/corpus/$t"
        for f in "$base"/*; do
            if [ ! -e "$common/$(basename "$f")" ]; then
                cp "$f" "fuzz/corpus/$t/"
            fi
        done
        rm -rf "$base"
    done
    rm -rf fuzz/corpus/common
    cp -r "$common" fuzz/corpus/common
    base=$(mktemp -d)
    mkdir -p "$all.control"
    cp fuzz/corpus/control/* fuzz/target/work-corpus/control/* "$all.control"/ 2>/dev/null || true
    "$bins/control" -merge=1 -use_counters=0 -max_len=8192 "$base" "$all.control"
    rm -rf fuzz/corpus/control
    cp -r "$base" fuzz/corpus/control
    rm -rf "$all" "$all.control" "$common" "$base"
}

crashed=()
for target in "${targets[@]}"; do
    case "$target" in
        message) dir=dns/fuzz ;;
        control | bandwidth | bridge | dnsname | firewall | host-local | ipvlan | loopback | \
            macvlan | portmap | ptp | tuning) dir=fuzz ;;
        *)
            echo "unknown target $target (targets: ${all_targets[*]})" >&2
            exit 2
            ;;
    esac
    # New inputs go to a working corpus outside git; the checked-in one is read as seeds and
    # changes only with FUZZ_UPDATE_CORPUS=1. The plugin targets share fuzz/corpus/common
    # (an invocation is the same bytes whatever the plugin). dns/fuzz keeps its corpus out
    # of git altogether.
    if [ "$dir" = fuzz ]; then
        work="fuzz/target/work-corpus/$target"
        mkdir -p "fuzz/corpus/$target"
        corpora=("$PWD/$work" "$PWD/fuzz/corpus/$target")
        if [ "$target" != control ]; then
            corpora+=("$PWD/fuzz/corpus/common")
        fi
    else
        work="dns/fuzz/corpus/$target"
        corpora=("$PWD/$work")
    fi
    mkdir -p "$work" "$dir/artifacts/$target" "$dir/target/logs"
    log="$PWD/$dir/target/logs/$target.log"
    marker=$(mktemp)
    echo "== $target: ${seconds} s (log: $log)"
    status=0
    (cd "$dir" && cargo +nightly fuzz run "${build_flags[@]}" "$target" "${corpora[@]}" -- \
        "${fuzz_flags[@]}") >"$log" 2>&1 || status=$?
    runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    corpus=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 || true)
    echo "   $target: exit $status, ${runs:-?} runs, ${corpus:-corpus ?}"
    if [ "$status" -ne 0 ]; then
        # What libFuzzer wrote for this run: crash-, oom-, timeout- or leak- files.
        found=$(find "$dir/artifacts/$target" -type f -newer "$marker" | head -5)
        crashed+=("$target")
        if [ -n "$found" ]; then
            echo "   $target CRASHED; input(s):"
            echo "$found" | sed 's/^/     /'
            echo "   replay: (cd $dir && cargo +nightly fuzz run ${build_flags[*]} $target <file>)"
        else
            echo "   $target failed without a crash file; see $log" >&2
            tail -20 "$log" >&2
        fi
    fi
    rm -f "$marker"
    if [ "${FUZZ_UPDATE_CORPUS:-0}" = 1 ] && [ "$dir" = fuzz ] && [ "$status" -eq 0 ]; then
        update_corpus "$target" "$work" >>"$log" 2>&1
        echo "   fuzz/corpus/$target: $(find "fuzz/corpus/$target" -type f | wc -l) inputs," \
            "$(find "fuzz/corpus/$target" -type f -exec cat {} + | wc -c) bytes"
    fi
done

if [ "${FUZZ_UPDATE_CORPUS:-0}" = rebuild ] && [ "${#crashed[@]}" -eq 0 ]; then
    echo "== minimizing fuzz/corpus anew"
    mkdir -p fuzz/target/logs
    rebuild_corpus >fuzz/target/logs/rebuild-corpus.log 2>&1
    echo "   $(find fuzz/corpus -type f | wc -l) inputs," \
        "$(find fuzz/corpus -type f -exec cat {} + | wc -c) bytes"
fi

if [ "${#crashed[@]}" -gt 0 ]; then
    echo "== crashed: ${crashed[*]}"
    exit 1
fi
echo "== no crash in ${#targets[@]} targets, ${seconds} s each"
