"""The feature cache: written once, resumable, and equal to encoding the video live."""

import pytest
import torch
from hydra.utils import instantiate

from foresight.config import compose
from foresight.data.feature_cache import FeatureDataModule, preprocess, preprocess_device
from foresight.features import encode_batch
from foresight.training.train import train
from tests.helpers import build


def test_cached_loss_equals_live_loss_and_preprocess_resumes(tmp_path, twin_dir, batch):
    out = tmp_path / "features"
    cfg = compose(
        [
            f"paths.cache_dir={twin_dir}",
            f"+preprocess.out_dir={out}",
            "+preprocess.batch_size=8",
            "+preprocess.frames=false",
        ]
    )
    first, again = preprocess(cfg), preprocess(cfg)
    assert (first["written"], first["skipped_shards"]) == (80, 0)
    assert first["clips_per_second"] == pytest.approx(80 / first["seconds"], rel=0.01)  # per rank
    assert (again["written"], again["skipped_shards"]) == (0, 5)  # finished shards are not redone
    assert first["steady_clips_per_second"] > 0  # after its first batch of 8
    assert again["clips_per_second"] == 0 and again["steady_clips_per_second"] is None

    cached = FeatureDataModule(
        str(out / "train-{000000..000003}.tar"), str(out / "val-000000.tar"), val_batch_size=8
    )
    (cached_batch, *_) = list(cached.val_dataloader())
    live = instantiate(cfg.data)
    (live_batch,) = list(live.val_dataloader())
    assert cached_batch["key"] == live_batch["key"]
    assert torch.equal(cached_batch["target"], live_batch["target"])  # held-out frames kept for pixel metrics

    module = build("B", twin_dir)
    live_feats = encode_batch(live_batch, module.vlm, module.ltx)
    cached_feats = module.features(cached_batch)
    assert torch.allclose(cached_feats.target, live_feats.target, atol=1e-5)
    losses = []
    for feats in (live_feats, cached_feats):
        torch.manual_seed(0)
        losses.append(module.option.loss(module.adapter, module.ltx, feats)["loss"])
    assert torch.allclose(losses[0], losses[1], rtol=1e-5), losses
    # the prefix baseline's context latents are cached too, equal to the live ones
    live_context = encode_batch(live_batch, module.vlm, module.ltx, context_latents=True).context_latents
    assert torch.allclose(cached_feats.context_latents, live_context, atol=1e-5)


@pytest.mark.slow
def test_training_from_the_cache_loads_no_vlm_and_no_t5(tmp_path, twin_dir, monkeypatch):
    out = tmp_path / "features"
    cfg = compose(
        [
            f"paths.cache_dir={twin_dir}",
            f"+preprocess.out_dir={out}",
            "+preprocess.batch_size=8",
            "+preprocess.frames=false",
        ]
    )
    preprocess(cfg)

    def no_t5(*args, **kwargs):
        raise AssertionError("T5 loaded although the cache holds the caption states")

    monkeypatch.setattr("foresight.models.ltx.FrozenTextEncoder", no_t5)
    # the VLM points at a directory that does not exist: loading it would fail
    result = train(
        compose(
            [
                "+experiment=optionC",
                "data=features",
                f"paths.output_dir={tmp_path}/run",
                f"paths.cache_dir={twin_dir}",
                "logger=csv",
                "trainer.max_steps=4",
                "trainer.val_check_interval=4",
                "vlm.twin=null",
                f"vlm.pretrained={tmp_path}/no_vlm_here",
                f"data.train_shards='{out}/train-{{000000..000003}}.tar'",
                f"data.val_shards={out}/val-000000.tar",
            ]
        )
    )
    assert result["metrics"]["val/diag/flow_t0.1"] > 0 and result["checkpoints"]  # validated from the cache
    assert (
        "val/psnr_instruction_gap" not in result["metrics"]
    )  # cached states hold only their own instruction


def test_a_cache_written_for_another_dit_is_refused_before_training(tmp_path, twin_dir):
    from foresight.bench.data import write_feature_shard

    write_feature_shard(tmp_path / "f-000000.tar", 2, vlm=(5, 64), text=(32, 4096), grid=(3, 2, 2))
    with pytest.raises(ValueError, match="caption states 4096 wide, but this model's DiT reads 64"):
        train(
            compose(
                [
                    f"paths.cache_dir={twin_dir}",
                    f"paths.output_dir={tmp_path}/run",
                    "logger=none",
                    "data=features",
                    f"data.train_shards={tmp_path}/f-000000.tar",
                    f"data.val_shards={tmp_path}/f-000000.tar",
                ]
            )
        )


def test_a_cache_of_an_older_format_is_refused_before_training(tmp_path):
    # written before the VLM read video at M-RoPE positions: its states are not what the VLM gives now
    import json

    import webdataset as wds

    from foresight.bench.data import write_feature_shard
    from foresight.data.stream import shard_samples

    write_feature_shard(tmp_path / "new.tar", 1, vlm=(5, 64), text=(32, 64), grid=(3, 2, 2))
    with wds.TarWriter(str(tmp_path / "old.tar")) as sink:
        for _, sample in shard_samples(str(tmp_path / "new.tar")):
            meta = json.loads(sample["meta.json"])
            del meta["format"]  # what preprocess.py wrote before
            kept = {k: v for k, v in sample.items() if k == "__key__" or not k.startswith("_")}
            sink.write({**kept, "meta.json": json.dumps(meta)})
    new = FeatureDataModule(str(tmp_path / "new.tar"), str(tmp_path / "new.tar"))
    assert new.cached_widths() == {"vlm": 64, "text": 64}
    old = FeatureDataModule(str(tmp_path / "old.tar"), str(tmp_path / "old.tar"))
    with pytest.raises(
        ValueError, match="format 1, and this Foresight reads format 2.*re-run python preprocess.py"
    ):
        old.cached_widths()


def test_missing_cache_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python preprocess.py"):
        FeatureDataModule(str(tmp_path / "train-{000000..000003}.tar"), str(tmp_path / "val-000000.tar"))


def test_preprocess_runs_the_frozen_models_on_this_ranks_gpu(monkeypatch):
    # the models were left where their config built them (the CPU), so a GPU machine cached on its CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert preprocess_device(None, rank=5) == torch.device("cuda", 1)  # torchrun's local rank
    monkeypatch.delenv("LOCAL_RANK")
    assert preprocess_device(None, rank=6) == torch.device("cuda", 2)  # a rank per GPU of one host
    assert preprocess_device("cpu", rank=0) == torch.device("cpu")  # preprocess.device wins
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert preprocess_device(None, rank=0) == torch.device("cpu")
