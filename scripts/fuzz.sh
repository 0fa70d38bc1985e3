#!/usr/bin/env bash
# Runs safeshift's fuzz targets (cargo-fuzz, libFuzzer) for a given time.
#
#   scripts/fuzz.sh TARGET SECONDS     one target
#   scripts/fuzz.sh all SECONDS        every target in turn, SECONDS each
#   scripts/fuzz.sh list               the targets
#
# Needs `cargo install cargo-fuzz`. Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its flags, and the default sanitizer is `none` (the code under test is
# safe Rust; overflow checks and debug assertions stay on). FUZZ_SANITIZER=address turns
# AddressSanitizer on. FUZZ_JOBS (default 1) runs that many workers.
#
# Corpora live in fuzz/corpus/TARGET (not committed), seeded on every run from the repo's
# own fixtures; crashes go to fuzz/artifacts/TARGET. Reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none TARGET fuzz/artifacts/TARGET/crash-…
# and turn it into a regression test in the crate concerned.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
targets=(safetensors_header dsl_roundtrip pickle pickle_differential torch_zip registry)

usage() {
    echo "usage: $0 TARGET|all SECONDS   (targets: ${targets[*]})" >&2
    exit 2
}

# Copies the repo's fixtures into the target's corpus (existing entries are kept).
seed() {
    local target="$1" corpus="fuzz/corpus/$1"
    mkdir -p "$corpus"
    case "$target" in
        safetensors_header)
            # The small ones: libFuzzer's default max_len follows the largest seed.
            find crates tests -name '*.safetensors' -size -16k -not -path '*/target/*' -exec cp -n {} "$corpus/" \;
            ;;
        dsl_roundtrip)
            local file
            for file in schemas/*/*.ss migrations/*/*.ss tests/data/diagnostics/*/input.ss; do
                cp -n "$file" "$corpus/$(echo "$file" | tr / _)"
            done
            ;;
        pickle | pickle_differential)
            # The pickles inside the zip fixtures, and the legacy files (pickles back to back).
            local file
            for file in crates/torch/tests/data/*.pt crates/torch/tests/data/*.ckpt crates/torch/tests/data/malicious/mal_[a-f]*.pt; do
                if unzip -l "$file" >/dev/null 2>&1; then
                    unzip -p "$file" '*/data.pkl' >"$corpus/$(basename "$file").pkl" 2>/dev/null || true
                else
                    cp -n "$file" "$corpus/"
                fi
            done
            ;;
        torch_zip)
            cp -n crates/torch/tests/data/*.pt crates/torch/tests/data/*.ckpt "$corpus/"
            # Not the 1 MB zip bomb: it would set max_len to a megabyte.
            cp -n crates/torch/tests/data/malicious/mal_[a-f]*.pt "$corpus/"
            ;;
        registry)
            # The input drives a generator (fuzz/src/lib.rs); a few fixed choice streams.
            local byte
            for byte in 01 07 3f 80 ff; do
                printf "\\x$byte%.0s" $(seq 64) >"$corpus/seed-$byte"
            done
            ;;
        *) usage ;;
    esac
}

run() {
    local target="$1" seconds="$2"
    seed "$target"
    mkdir -p "fuzz/artifacts/$target"
    # With jobs, libFuzzer writes each worker's log to fuzz/fuzz-N.log.
    local jobs=()
    if [[ "${FUZZ_JOBS:-1}" -gt 1 ]]; then jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"); fi
    echo "== $target for ${seconds}s" >&2
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "${FUZZ_SANITIZER:-none}" "$target" \
        "corpus/$target" -- -max_total_time="$seconds" "${jobs[@]}" \
        -print_final_stats=1 -rss_limit_mb=2048 -timeout=10)
}

case "${1:-}" in
    list) printf '%s\n' "${targets[@]}" ;;
    all)
        [[ $# -eq 2 ]] || usage
        # A crash ends that target's run (libFuzzer stops at the first); go on with the
        # others and fail at the end.
        status=0
        for target in "${targets[@]}"; do run "$target" "$2" || status=1; done
        exit "$status"
        ;;
    "") usage ;;
    *)
        [[ $# -eq 2 ]] || usage
        run "$1" "$2"
        ;;
esac
