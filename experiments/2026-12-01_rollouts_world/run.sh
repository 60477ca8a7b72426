#!/usr/bin/env bash
# Rollouts on the pretrained world (issue 15, items 2-3): does context corruption reduce drift at K = 3,
# and what does latent continuation cost? Option C, 300 steps, seeds 0-2. The no-corruption arm is the
# options study's optionC runs (experiments/2026-12-01_options_world, same data, steps and seeds); the
# corrupted arm trains with module.context_noise=0.3. Every checkpoint and the frozen i2v baseline are
# scored as 3-chunk rollouts on the long held-out split (data/world/heldout_long-000000.tar, 32 clips).
#   BASE=logs/study_world/train/multiruns/<sweep> bash experiments/2026-12-01_rollouts_world/run.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
LOGS=${LOGS:-logs/rollouts_world}
BASE=${BASE:?the options study sweep directory (its optionC runs are the no-corruption arm)}
OUT=experiments/2026-12-01_rollouts_world
WORLD="model=world vlm=world data=world"
LONG='shards="data/world/heldout_long-000000.tar"'
STEPS=${STEPS:-300}

$PY train.py -m +experiment=optionC "seed=0,1,2" $WORLD logger=csv module.context_noise=0.3 \
    trainer.max_steps=$STEPS trainer.val_check_interval=$((STEPS / 2)) callbacks.sample_videos.every_n_steps=0 \
    paths.log_dir=$LOGS
NOISY=$(ls -d $LOGS/train/multiruns/*/ | tail -1)
for run in "$NOISY"*/; do
    [ -f "$run/checkpoints/last.safetensors" ] || continue
    $PY evaluate.py ckpt="$run" "$LONG" rollout=3 batch_size=16 out_dir="$LOGS/eval/noise0.3/$(basename "$run")"
done
for run in "$BASE"*/; do
    grep -q "experiment=optionC" "$run/.hydra/overrides.yaml" || continue
    $PY evaluate.py ckpt="$run" "$LONG" rollout=3 batch_size=16 out_dir="$LOGS/eval/clean/$(basename "$run")"
    $PY evaluate.py ckpt="$run" "$LONG" rollout=3 batch_size=16 latent_continuation=true \
        out_dir="$LOGS/eval/clean_latent/$(basename "$run")"
done
$PY evaluate.py option=i2v $WORLD "$LONG" rollout=3 batch_size=16 out_dir="$LOGS/eval/i2v/0"
# mean and spread over seeds per arm, per chunk, with copy-last and the seconds per chunk
$PY -m foresight.eval.rollout "$LOGS/eval" > $OUT/summary.md
cat $OUT/summary.md
