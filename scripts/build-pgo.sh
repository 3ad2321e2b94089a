#!/usr/bin/env bash
# npm run build:pgo [-- --no-install] [-- --no-compare]
#
# Profile-guided build of the addon (g++), measured against the plain one:
#  1. the plain build (npm run build:native), kept as .tmp/pgo/plain.node;
#  2. an instrumented build (-fprofile-generate) in native/build-pgo/;
#  3. a representative workload on it: the engine on generated models (Q8_0 and
#     Q4_0, SmolLM2-135M widths, 4 layers, in .tmp/pgo/): prompt processing,
#     batch-1 decode and batched decode, a few seconds each, on the kernel path
#     this CPU runs by default;
#  4. the optimised build (-fprofile-use -fprofile-partial-training) in the same
#     directory (profile files are named after its object files), installed as
#     native/build/Release/tokenstream.node (unless --no-install);
#  5. plain vs PGO: bench-engine --no-peer on both builds, alternating
#     (scripts/compare-addons.ts), on the bench models that exist (else the
#     generated ones). Skipped with --no-compare.
# The default build (npm ci / npm run build) never uses a profile. To go back
# to the plain addon: rm native/build/Release/tokenstream.node && npm run build:native.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
INSTALL=1
COMPARE=1
for a in "$@"; do
  case "$a" in
    --no-install) INSTALL=0 ;;
    --no-compare) COMPARE=0 ;;
    *) echo "build-pgo: unknown option $a (--no-install, --no-compare)" >&2; exit 2 ;;
  esac
done

WORK=$ROOT/.tmp/pgo
BUILD=$ROOT/native/build-pgo
PROFILE=$WORK/profile
mkdir -p "$WORK"
CMAKE_JS=(npx --no-install cmake-js)
log() { echo "build-pgo: $*" >&2; }

log "uptime: $(uptime)"
log "1/5 plain build"
"${CMAKE_JS[@]}" compile -d native --CDCMAKE_BUILD_TYPE=Release >"$WORK/plain-build.log" 2>&1 || { cat "$WORK/plain-build.log" >&2; exit 1; }
[ -f dist/scripts/bench-engine.js ] || npx --no-install tsc -p tsconfig.json
cp native/build/Release/tokenstream.node "$WORK/plain.node"

log "2/5 instrumented build (native/build-pgo, profile in $PROFILE)"
rm -rf "$PROFILE"
"${CMAKE_JS[@]}" rebuild -d native -O "$BUILD" --CDCMAKE_BUILD_TYPE=Release --CDTS_PGO=generate "--CDTS_PGO_DIR=$PROFILE" >"$WORK/generate-build.log" 2>&1 \
  || { cat "$WORK/generate-build.log" >&2; exit 1; }

log "3/5 training workload"
VOCAB=test/fixtures/tokenizer/ggml-vocab-llama-spm.gguf
TRAIN_MODELS=()
for type in q8_0 q4_0; do
  m=$WORK/train-$type.gguf
  if [ ! -f "$m" ]; then
    node bin/tokenstream.js make-model --arch llama --embd 576 --layers 4 --heads 9 --kv-heads 3 --ffn 1536 --tied \
      --type "$type" --vocab-from "$VOCAB" --out "$m" >/dev/null
  fi
  TRAIN_MODELS+=("$m")
done
for m in "${TRAIN_MODELS[@]}"; do
  # Instrumented code with atomic counters runs ~20x slower: a short run covers the paths.
  TOKENSTREAM_ADDON=$BUILD/Release/tokenstream.node node dist/scripts/bench-engine.js --model "$m" --no-peer --json \
    --reps 1 --tokens 16 --prompt 128 --batch 4,16 >/dev/null 2>"$WORK/train.log"
done
ls "$PROFILE"/*.gcda >/dev/null 2>&1 || { log "no profile was written to $PROFILE"; exit 1; }
log "   $(ls "$PROFILE"/*.gcda | wc -l) profile files"

log "4/5 optimised build"
# configure first: `build` alone keeps the cached TS_PGO=generate. Same directory, so
# the object files (and the profile file names) are the same; the flags change, so all recompile.
{ "${CMAKE_JS[@]}" configure -d native -O "$BUILD" --CDCMAKE_BUILD_TYPE=Release --CDTS_PGO=use "--CDTS_PGO_DIR=$PROFILE" \
  && "${CMAKE_JS[@]}" build -d native -O "$BUILD" --CDCMAKE_BUILD_TYPE=Release --CDTS_PGO=use "--CDTS_PGO_DIR=$PROFILE"; } >"$WORK/use-build.log" 2>&1 \
  || { cat "$WORK/use-build.log" >&2; exit 1; }
grep -q "^TS_PGO:STRING=use$" "$BUILD/CMakeCache.txt" || { log "the optimised build is not configured with TS_PGO=use (see $WORK/use-build.log)"; exit 1; }
# A profile the compiler could not match would leave the build unguided: say so.
if grep -q "profile count data file not found\|coverage mismatch" "$WORK/use-build.log"; then
  log "warning: some object files found no profile (see $WORK/use-build.log)"
fi
cp "$BUILD/Release/tokenstream.node" "$WORK/pgo.node"
if [ "$INSTALL" = 1 ]; then
  cp "$WORK/pgo.node" native/build/Release/tokenstream.node
  log "   installed as native/build/Release/tokenstream.node (plain build kept as $WORK/plain.node)"
fi

if [ "$COMPARE" = 1 ]; then
  log "5/5 plain vs PGO"
  MODELS=()
  for f in bench/models/smollm2-135m-shape-q8_0.gguf bench/models/smollm2-135m-shape-q4_0.gguf; do
    [ -f "$f" ] && MODELS+=(--model "$f")
  done
  if [ ${#MODELS[@]} -eq 0 ]; then
    for m in "${TRAIN_MODELS[@]}"; do MODELS+=(--model "$m"); done
  fi
  node dist/scripts/compare-addons.js --addon "plain=$WORK/plain.node" --addon "pgo=$WORK/pgo.node" "${MODELS[@]}" --rounds 2 \
    -- --reps 2 --tokens 32 --batch 16
fi
