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

    quiet()
    with one_line_errors("preprocess.py"):
        checks.check(cfg, checks.PREPROCESS)
        counts = preprocess(cfg)
        steady = counts["steady_clips_per_second"]
        print(
            f"feature shards in {cfg.preprocess.out_dir}: {counts['written']} clips written, "
            f"{counts['skipped_shards']} shards already done "
            f"({counts['clips_per_second']:.2f} clips/s in {counts['seconds']:.0f} s"
            + (f"; {steady:.2f} clips/s after the first batch)" if steady else ")")
        )


if __name__ == "__main__":
    main()
