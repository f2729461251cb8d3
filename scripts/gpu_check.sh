#!/usr/bin/env bash
# One prepared check for a lent GPU machine (no network; numpy, scipy, h5py, tqdm, pytest,
# hypothesis, torch and cupy are already installed there). Runs from the source tree, installs
# nothing, and finishes in about 5 minutes on an H100:
#   versions -> the test suite with GPU tests on -> the convnet benchmark against cuDNN (TF32
#   off and on) -> imagenet_small training throughput with --conv fft and --conv direct.
# Everything it prints also goes to $OUT/gpu_check.log when OUT is set; its last lines are a
# short table.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.
OUT=${OUT:-}
LOG=${OUT:+$OUT/gpu_check.log}
[ -n "$OUT" ] && mkdir -p "$OUT"
exec > >(tee ${LOG:+"$LOG"}) 2>&1
summary=()
step() {  # step NAME SECONDS COMMAND...: run with a time limit, record pass/fail
    local name=$1 limit=$2; shift 2
    echo; echo "=== $name (limit ${limit}s) ==="
    local t0=$SECONDS
    timeout "$limit" "$@"; local rc=$?
    summary+=("$(printf '%-28s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - t0))")")
}

echo "=== versions ==="
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 - <<'PY'
import cupy, numpy, scipy, torch
print('cupy', cupy.__version__, '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion(),
      '| torch', torch.__version__, '| cuDNN', torch.backends.cudnn.version(),
      '| numpy', numpy.__version__, '| scipy', scipy.__version__)
from minifft import backend
print('minifft sees a usable GPU:', backend.gpu_available())
PY

step "tests (GPU enabled)" 150 python3 -m pytest -q -x -p no:cacheprovider \
    --deselect tests/test_data.py::test_real_fashion_mnist
step "tests (GPU only, verbose)" 60 python3 -m pytest -q -m gpu -rs -p no:cacheprovider
for tf32 in off on; do
    step "benchmark convnet tf32=$tf32" 75 env CUPY_TF32=$([ $tf32 = on ] && echo 1 || echo 0) \
        python3 scripts/benchmark.py --device gpu --suite convnet --batch 128 --no-direct \
        --repeat 5 --warmup 2 --tf32 $tf32 $([ $tf32 = off ] && echo --gemm-rates) \
        ${OUT:+--json "$OUT/convnet_tf32_$tf32.json"}
done
python3 scripts/prepare_data.py synthetic >/dev/null 2>&1
for conv in fft direct; do
    rm -rf "${OUT:-/tmp}/gpu_train_$conv"  # train.py never writes over an earlier run
    step "train imagenet_small $conv" 60 python3 scripts/train.py --model imagenet_small \
        --device gpu --conv $conv --epochs 1 --max-steps 40 --batch-size 128 --no-progress \
        --out "${OUT:-/tmp}/gpu_train_$conv"
done

echo; echo "=== summary ==="
printf '%s\n' "${summary[@]}"
for conv in fft direct; do
    f="${OUT:-/tmp}/gpu_train_$conv/log.csv"
    [ -f "$f" ] && echo "imagenet_small --conv $conv: $(tail -1 "$f" | cut -d, -f7) images/s"
done
