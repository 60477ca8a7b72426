"""Predict future videos:  python predict.py ckpt=RUN_DIR input=VIDEO_IMAGE_DIR_OR_SHARDS prompt="..."
(see conf/predict.yaml)."""

import hydra
from omegaconf import DictConfig

from foresight.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    from foresight.console import one_line_errors, quiet
    from foresight.predict import main as predict

    quiet()
    with one_line_errors("predict.py"):
        predict(cfg)


if __name__ == "__main__":
    main()
