"""Write the feature cache:  python preprocess.py  (see conf/preprocess.yaml)."""

import sys

import hydra
from omegaconf import DictConfig

from foresight.config import experiment_overrides, register_resolvers

register_resolvers()
sys.argv = experiment_overrides(sys.argv)  # experiment=X, the older form, is experiment=X


@hydra.main(version_base="1.3", config_path="conf", config_name="preprocess")
def main(cfg: DictConfig) -> None:
    from foresight import checks
    from foresight.console import one_line_errors, quiet
    from foresight.data.feature_cache import preprocess
    from foresight.throughput import rate_text

    quiet()
    with one_line_errors("preprocess.py"):
        checks.check(cfg, checks.PREPROCESS)
        counts = preprocess(cfg)
        print(
            f"feature shards in {cfg.preprocess.out_dir}: {counts['written']} clips written, "
            f"{counts['skipped_shards']} shards already done "
            f"(in {counts['seconds']:.0f} s: {rate_text(counts)})"
        )


if __name__ == "__main__":
    main()
