#!/usr/bin/env bash
# The options study on the pretrained world (issue 14, item 5): options A-D and the prefix baseline x
# 3 seeds, equal data and steps, then every checkpoint and the frozen i2v baseline scored on the
# held-out compositions, then compared. CPU; run from the repository root:
#   bash experiments/2026-12-01_options_world/run.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
LOGS=${LOGS:-logs/study_world}
OUT=experiments/2026-12-01_options_world
WORLD="model=world vlm=world data=world"
HELDOUT='shards="data/world/heldout-000000.tar"'
STEPS=${STEPS:-300}

$PY train.py -m "experiment=optionA,optionB,optionC,optionD,prefix" "seed=0,1,2" $WORLD logger=csv \
    trainer.max_steps=$STEPS trainer.val_check_interval=$((STEPS / 2)) callbacks.sample_videos.every_n_steps=0 \
    paths.log_dir=$LOGS
SWEEP=$(ls -d $LOGS/train/multiruns/*/ | tail -1)
for run in "$SWEEP"*/; do
    [ -f "$run/checkpoints/last.safetensors" ] || continue
    $PY evaluate.py ckpt="$run" "$HELDOUT" batch_size=8 out_dir="$LOGS/heldout/$(basename "$run")"
done
$PY evaluate.py option=i2v $WORLD "$HELDOUT" batch_size=8 out_dir="$LOGS/heldout/i2v"
$PY -m foresight.cli compare "$SWEEP" --out $OUT/report_val
$PY -m foresight.cli compare "$LOGS/heldout" --out $OUT/report_heldout
