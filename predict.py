"""Predict a future video:  python predict.py ckpt=RUN_DIR input=VIDEO_OR_IMAGE prompt="..."  (conf/predict.yaml)."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from foresight.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    from foresight.data.sample_world import encode_mp4
    from foresight.predict import Predictor, side_by_side

    out = Path(cfg.out_dir)
    targets = [out / "prediction.mp4", out / "side_by_side.mp4"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not cfg.overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist; pass overwrite=true or another out_dir")
    predictor = Predictor(cfg.ckpt)
    context, fps = predictor.read_context(cfg.input)
    frames, timings = predictor.predict(context, cfg.prompt, fps=fps, seed=cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    targets[0].write_bytes(encode_mp4(frames[0], fps))
    targets[1].write_bytes(encode_mp4(side_by_side(context, frames[0]), fps))
    print(f"wrote {targets[0]} and {targets[1]} ({len(frames[0])} frames at {fps:g} fps); "
          + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))


if __name__ == "__main__":
    main()
