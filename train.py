"""Train an adapter option:  python train.py experiment=optionB   (see conf/train.yaml)."""

import sys

import hydra
from omegaconf import DictConfig

from foresight.config import experiment_overrides, register_resolvers

register_resolvers()
sys.argv = experiment_overrides(sys.argv)  # +experiment=X, the older form, is experiment=X


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from foresight.console import one_line_errors, quiet
    from foresight.training.train import train_or_record_failure

    quiet()
    with one_line_errors("train.py"):
        return train_or_record_failure(cfg)


if __name__ == "__main__":
    main()
