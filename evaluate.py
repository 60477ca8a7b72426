"""Score a checkpoint:  python evaluate.py ckpt=RUN_DIR shards='held-out-{000000..000003}.tar'  (conf/evaluate.yaml)."""

import hydra
from omegaconf import DictConfig

from foresight.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    from foresight.evaluate import evaluate, markdown, write

    result = evaluate(cfg.ckpt, shards=cfg.shards, limit=cfg.limit, batch_size=cfg.batch_size, seed=cfg.seed,
                      lpips_vgg=cfg.lpips.vgg, lpips_lin=cfg.lpips.lin, fvd_i3d=cfg.fvd.i3d)
    paths = write(result, cfg.out_dir)
    print(markdown(result))
    print("wrote " + " and ".join(map(str, paths)))
    return result["metrics"]["latent_mse"]


if __name__ == "__main__":
    main()
