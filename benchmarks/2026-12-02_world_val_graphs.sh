#!/usr/bin/env bash
# model.cuda_graphs in a training run's validation on a GPU: option B on the world from its feature
# cache, 60 steps, validation every 20 on 2 batches, once eager and once with the DiT's forwards
# without gradients replayed as CUDA graphs. Same seed and data: the training steps (eager in both)
# are the same, so the validation metrics compare the graphed forward with the eager one.
#   python preprocess.py model=world vlm=world data=world preprocess.out_dir=$PWD/logs/wcache/world
#   OUT=. bash benchmarks/2026-12-02_world_val_graphs.sh        # then: $OUT/metrics_{false,true}.csv
set -u
W=$PWD/logs/wcache/world
for g in false true; do
  rm -rf "/tmp/val_graphs_$g"
  python train.py experiment=optionB model=world vlm=world data=features \
    "data.train_shards='$W/train-{000000..000003}.tar'" "data.val_shards=$W/val-000000.tar" trainer=gpu \
    trainer.max_steps=60 trainer.val_check_interval=20 trainer.limit_val_batches=2 logger=csv \
    '~callbacks.sample_videos' model.cuda_graphs=$g hydra.run.dir=/tmp/val_graphs_$g > "$OUT/train_$g.log" 2>&1
  echo "model.cuda_graphs=$g rc=$?"
  cp /tmp/val_graphs_$g/csv/version_0/metrics.csv "$OUT/metrics_$g.csv"
  grep -E "val/(latent_mse|psnr|ssim) " "$OUT/train_$g.log"
done
