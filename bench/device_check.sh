#!/usr/bin/env bash
# Issue 11's GPU checks in one run, on a machine with a CUDA GPU (README "GPU checks"):
#   1. the device tests (tests/engine/test_devices.py: fp32 exactness on the GPU, augmentation,
#      training in fp32/bf16/fp16, bit-exact resume) and the precision tests;
#   2. `svgui-engine bench` on the GPU: prediction (x real time) in fp32 and auto, training updates;
#   3. the real training loop for the paper's network and the thesis network (bench/train_speed.py),
#      projected to the paper's 40,000 updates.
# Each step has its own time limit, so one that hangs costs only its own; the whole stays under 9 min.
# Results go to $OUT (the device tool's folder), else out/device. Python packages the GPU image
# lacks (soundfile, cffi, pycparser, soxr) come as wheels in .whl/ when that folder is there.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/device}
mkdir -p "$out"
python=${PYTHON:-python3}
device=${DEVICE:-cuda}            # DEVICE=cpu BENCH_SECONDS=30 TRAIN_BUDGET_S=30 tries the script anywhere
bench_s=${BENCH_SECONDS:-600}
budget_s=${TRAIN_BUDGET_S:-80}
if [ -d .whl ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}  # tests/conftest.py hides GPUs unless this is set
export SVGUI_CACHE_DIR=/tmp/svgui-cache

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO GPU VISIBLE')"
} | tee "$out/gpu.txt"

echo "== 1. device and precision tests"
timeout 150 "$python" -m pytest -q -p no:cacheprovider -o addopts="" tests/engine/test_devices.py \
    tests/engine/test_precision.py 2>&1 | tee "$out/tests.txt" | tail -15

echo "== 2. svgui-engine bench on $device (fp32 and auto)"
timeout 150 "$python" -m engine.cli bench --device "$device" --seconds "$bench_s" --excerpt-seconds 20 --json \
    > "$out/bench.json" 2> "$out/bench.err"; tail -3 "$out/bench.err"
"$python" -c "import json, sys; r = json.load(open(sys.argv[1])); print({k: r.get(k) for k in (
    'precision_auto', 'fcn_prediction_fp32_x_realtime', 'fcn_prediction_auto_x_realtime',
    'fcn_tta5_prediction_auto_x_realtime')}, r.get('training'))" "$out/bench.json"

echo "== 3. the training loop, projected to 40,000 updates"
for arch in paper thesis; do
    timeout $((budget_s + 30)) "$python" bench/train_speed.py --device "$device" --architecture "$arch" \
        --updates 3000 --budget-s "$budget_s" --json > "$out/train_speed_$arch.json" 2> "$out/train_speed_$arch.err"
    tail -2 "$out/train_speed_$arch.err"
    "$python" -c "import json, sys; r = json.load(open(sys.argv[1])); print(sys.argv[2], r['precision'],
f\"{r['ms_per_update']:.2f} ms/update, 40,000 updates: {r['paper_schedule_minutes']:.1f} min\")" \
        "$out/train_speed_$arch.json" "$arch"
done
