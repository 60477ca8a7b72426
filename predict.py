"""Predict future videos:  python predict.py ckpt=RUN_DIR input=VIDEO_IMAGE_DIR_OR_SHARDS prompt="..."  (conf/predict.yaml)."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from foresight.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    from foresight.predict import Predictor, predict_inputs

    out = Path(cfg.out_dir)
    existing = sorted(str(p) for p in out.glob("*.mp4")) if out.is_dir() else []
    if existing and not cfg.overwrite:  # checked before any model loads
        raise FileExistsError(f"{out} already holds predictions ({existing[0]}, ...); pass overwrite=true or "
                              f"another out_dir")
    report = predict_inputs(Predictor(cfg.ckpt), cfg.input, cfg.prompt, out, batch_size=cfg.batch_size, seed=cfg.seed)
    print(f"wrote {len(report['written'])} prediction(s) and side-by-side videos to {out} in "
          f"{report['seconds']:.2f} s" + (f"; skipped {report['skipped']}" if report["skipped"] else ""))


if __name__ == "__main__":
    main()
