#!/usr/bin/env bash
# One command for a CUDA machine: device and versions, step times of the paper's networks
# (batch 1 and 16; fp32, bf16, channels_last, compile; MFU), then a 1-epoch train + evaluate
# of the demo data on the GPU. Under 8 minutes on a data-centre GPU.
# Without CUDA it says so, runs the same path as a CPU smoke (tiny networks) and exits 0.
#   bash bench/gpu_check.sh            # PYTHON=... to choose the interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    SMOKE=""; DEVICE=cuda
    TRAIN=(--preset small --epochs 1 --epochs-decay 0)
    BUILD=()
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
else
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False):"
    echo "gpu_check: running the same steps as a CPU smoke test (tiny networks); no GPU figures."
    SMOKE="--smoke"; DEVICE=cpu
    # A 128 dataset: training takes its size (unet_128) from dataset.json.
    TRAIN=(--ngf 8 --ndf 8 --epochs 1 --epochs-decay 0 --set val_max_images=2)
    BUILD=(--size 128 --crops 1)
fi

echo "== step time (pix2pix_step on fixed tensors)"
timeout 360 "$PY" bench/gpu_step.py $SMOKE

echo "== 1-epoch train + evaluate on the demo data ($DEVICE)"
"$PY" -m pix2pix.cli samples "$WORK/samples" >/dev/null
"$PY" -m pix2pix.cli build "$WORK/samples" "$WORK/dataset" --params params.yaml "${BUILD[@]}" --no-progress >/dev/null
start=$(date +%s)
"$PY" -m pix2pix.cli train "$WORK/dataset" "$WORK/run" "${TRAIN[@]}" --device "$DEVICE" \
    --no-progress --no-dvclive --sample-every 0 | tail -n 3
"$PY" -m pix2pix.cli evaluate "$WORK/run" "$WORK/dataset" "$WORK/report" --device "$DEVICE" \
    --max-images 8 | tail -n 5
echo "train + evaluate: $(( $(date +%s) - start )) s"
"$PY" - "$WORK/run/metrics.json" "$WORK/run/run_info.json" <<'PYEOF'
import json, sys
m = {**json.load(open(sys.argv[1])), **json.load(open(sys.argv[2]))}  # numbers | device, seconds
print(f"metrics: device {m['device']}, {m['step']} steps, G_L1 {m['G_L1']:.3f}, "
      f"val_L1 {m.get('val_L1', float('nan')):.3f}, {m['train_seconds_this_session']:.1f} s")
PYEOF
echo "gpu_check: done"
