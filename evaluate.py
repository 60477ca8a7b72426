"""Score a checkpoint:  python evaluate.py ckpt=RUN_DIR 'shards="held-out-{000000..000003}.tar"'
(see conf/evaluate.yaml)."""

import sys

import hydra
from omegaconf import DictConfig

from foresight.config import experiment_overrides, register_resolvers

register_resolvers()
sys.argv = experiment_overrides(sys.argv)  # +experiment=X, the older form, is experiment=X


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    from foresight.console import one_line_errors, quiet
    from foresight.eval.evaluate import main as evaluate

    quiet()
    with one_line_errors("evaluate.py"):
        metrics = evaluate(cfg)["metrics"]
        return metrics.get("latent_mse", metrics.get("latent_mse_rollout"))  # what a sweep minimises


if __name__ == "__main__":
    main()
