#!/usr/bin/env bash
# Training against exposure bias, second part (issue 15, item 2): does training on the model's own
# previous chunk (module.own_chunk) or noise on the VLM's context frames (module.context_frame_noise)
# reduce drift over a 3-chunk rollout? Option C on the world, 300 steps, seeds 0-2, each arm scored as
# 3-chunk rollouts on the long held-out split (32 clips), as experiments/2026-12-01_rollouts_world.
#   bash experiments/2026-12-01_own_chunk_world/run.sh
# Arms: own0, own0.2 and own0.5 train on the long train clips (data=world_rollout: windows at random
# starts, each batch with the next window's truth) with no, 20% and 50% own-chunk steps, so they
# differ only in module.own_chunk; frame20 trains on data=world with module.context_frame_noise=20 (0-255; about the
# pixel error of a chunk-1 prediction, PSNR 22 dB) and compares with the earlier study's clean arm.
set -euo pipefail
PY=${PY:-.venv/bin/python}
LOGS=${LOGS:-logs/own_chunk_world}
OUT=experiments/2026-12-01_own_chunk_world
LONG='shards="data/world/heldout_long-000000.tar"'
STEPS=${STEPS:-300}
COMMON="+experiment=optionC seed=0,1,2 model=world vlm=world logger=csv trainer.max_steps=$STEPS
    trainer.val_check_interval=$((STEPS / 2)) callbacks.sample_videos.every_n_steps=0"

ls data/world/train_long-00000{0..7}.tar > /dev/null 2>&1 ||
    $PY -m foresight.cli world render --train 0 --val 0 --heldout 0 --heldout-long 0 --train-long 256
train_arm() {  # name, overrides...
    local name=$1
    shift
    $PY train.py -m $COMMON "$@" hydra.sweep.dir="$LOGS/train/$name"
    for run in "$LOGS/train/$name"/*/; do
        $PY evaluate.py ckpt="$run" "$LONG" rollout=3 batch_size=16 out_dir="$LOGS/eval/$name/$(basename "$run")"
    done
}
train_arm own0 data=world_rollout module.own_chunk=0
train_arm own0.5 data=world_rollout module.own_chunk=0.5
train_arm own0.2 data=world_rollout module.own_chunk=0.2
train_arm frame20 data=world module.context_frame_noise=20
$PY -m foresight.eval.rollout "$LOGS/eval" > $OUT/summary.md
cat $OUT/summary.md
