#!/usr/bin/env bash
# merge_lora's cost in quality on trained weights: make train's run (option B on the world, its IC-LoRA of
# rank 16 trained 120 steps; 2-core CPU, fp32) scored by evaluate.py on the world's 32 held-out clips with
# the LoRA wrapped or folded into the DiT's weights, each with the DiT in fp32 and as fp8 matmuls.
#   OUT=. bash benchmarks/2026-12-03_world_merge_lora.sh      # then: $OUT/eval_{false,true}_{null,fp8}.json
set -u
RUN=/tmp/world_merge_lora/run
python train.py experiment=optionB model=world vlm=world data=world logger=csv hydra.run.dir=$RUN \
  > "$OUT/train.log" 2>&1
echo "train rc=$?"
for merge in false true; do
  for fp8 in null fp8; do
    dir=/tmp/world_merge_lora/eval_${merge}_$fp8
    python evaluate.py ckpt=$RUN merge_lora=$merge dit_quantize=$fp8 hydra.run.dir=$dir > "$dir.log" 2>&1
    echo "merge_lora=$merge dit_quantize=$fp8 rc=$?"
    cp $dir/evaluation.json "$OUT/eval_${merge}_$fp8.json"
    python -c "import json; m = json.load(open('$dir/evaluation.json'))['metrics']; print({k: round(m[k], 5) for k in ('latent_mse', 'psnr', 'ssim')})"
  done
done
