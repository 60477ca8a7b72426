"""The pretrained world (issue 14): its clips, its shipped files, its pretraining, and that it is what
makes an option beat copy-last-frame."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from foresight.config import ROOT, compose
from foresight.world import scene
from foresight.world.render import layout, render_batch, render_clip
from foresight.world.ship import WEIGHTS


def world_windows(shards: list[str], future: int, batch_size: int, **options):
    """The held-out windows of the world's 64x64 clips (4 context frames, from each clip's start, in
    order), as the loader cuts them; options: ClipWindows' others (limit, chunks)."""
    from foresight.data.loader import ClipWindows

    return ClipWindows(
        shards,
        4,
        [(64, 64, future)],
        None,
        train=False,
        seed=0,
        strict=True,
        batch_size=batch_size,
        **options,
    )


def test_rendering_is_deterministic_per_seed():
    a, b = render_clip(5, "val"), render_clip(5, "val")
    assert a.frames.shape == (scene.FRAMES, scene.SIZE, scene.SIZE, 3) and a.frames.dtype == np.uint8
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.caption == b.caption and a.meta == b.meta
    batch, captions, _ = render_batch([5, 6], "val")  # a batch renders each seed as alone
    np.testing.assert_array_equal(batch[0].numpy(), a.frames)
    assert captions[0] == a.caption
    assert not np.array_equal(render_clip(6, "val").frames, a.frames)
    assert not np.array_equal(render_clip(5, "train").frames, a.frames)  # splits draw from their own streams


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_instruction_decides_the_future(seed):
    """One context, every instruction: identical context frames, pairwise different futures."""
    clips = {a: render_clip(seed, "val", action=a) for a in scene.ACTIONS}
    context = clips[scene.STOP].frames[: scene.CONTEXT]
    for clip in clips.values():
        np.testing.assert_array_equal(clip.frames[: scene.CONTEXT], context)
    for (a, x), (b, y) in itertools.combinations(clips.items(), 2):
        diff = np.abs(x.frames[scene.CONTEXT :].astype(int) - y.frames[scene.CONTEXT :].astype(int))
        assert diff.max() >= 60, f"seed {seed}: '{a}' and '{b}' give the same future"
        assert x.caption != y.caption


def rollout_windows(chunks: int = scene.ROLLOUT_CHUNKS) -> list[slice]:
    """The frames each prediction window of a rollout covers: 3..19, 19..35, 35..51 for three."""
    return [
        slice(scene.CURRENT + k * (scene.FUTURE - 1), scene.CURRENT + (k + 1) * (scene.FUTURE - 1) + 1)
        for k in range(chunks)
    ]


def test_every_pair_of_instructions_separates_the_instructed_shape():
    """No bounce folds two instructions' paths together: they end apart by pixels, not fractions, in the
    first window and in each later window of a long clip (where paths may cross, but not run together)."""
    frames = scene.rollout_frames(scene.ROLLOUT_CHUNKS)
    for split in scene.SPLITS:
        for seed in range(100):
            s, instruction = layout(seed, split)
            paths = {
                a: scene.trajectories(s, scene.Instruction(instruction.target, a), frames)
                for a in scene.ACTIONS
            }
            paths = {a: p[instruction.target] for a, p in paths.items()}  # each (52, 2)
            for a, b in itertools.combinations(scene.ACTIONS, 2):
                apart = np.linalg.norm(paths[a] - paths[b], axis=-1)  # (52,)
                for k, window in enumerate(rollout_windows()):
                    assert apart[window].max() > 4, (split, seed, a, b, f"window {k}")


def test_no_sampled_future_is_the_still_current_frame():
    """Copy-last would score such a clip perfectly (infinite PSNR): the splits never draw one, nor a
    long clip a later window that is its own still current frame."""
    frames, _, metas = render_batch(list(range(48)), "val", frames=scene.rollout_frames(scene.ROLLOUT_CHUNKS))
    for window in rollout_windows():
        future = frames[:, window][:, 1:].int()
        still = frames[:, window][:, :1].int()
        moved = (future - still).abs().amax(dim=(1, 2, 3, 4))  # (B,)
        assert (moved > 0).all(), (window, [m for m, d in zip(metas, moved, strict=True) if d == 0])


@pytest.mark.parametrize("split", scene.SPLITS)
def test_a_long_clip_continues_the_short_one(split):
    """Same scene, same instruction: a 52-frame clip's first 20 frames are the 20-frame clip, bit for bit
    (so the default length renders what it always did, the committed shards included)."""
    seeds, actions = [0, 1, 2, 3], [None, "left", scene.STOP, None]
    short, captions, metas = render_batch(seeds, split, actions=actions)
    long, long_captions, long_metas = render_batch(seeds, split, actions=actions, frames=52)
    assert short.shape == (4, scene.FRAMES, scene.SIZE, scene.SIZE, 3) and long.shape[1] == 52
    torch.testing.assert_close(long[:, : scene.FRAMES], short, rtol=0, atol=0)
    assert (long_captions, long_metas) == (captions, metas)
    assert (long[:, scene.FRAMES :] != long[:, scene.FRAMES - 1 : scene.FRAMES]).any()  # it goes on moving
    with pytest.raises(ValueError, match="frames=19: a world clip holds at least 20 frames"):
        render_batch([0], split, frames=19)
    assert [scene.rollout_frames(k) for k in (1, 2, 3)] == [scene.FRAMES, 36, 52]


@pytest.mark.parametrize("split", scene.SPLITS)
def test_the_committed_shards_are_the_default_render(split):
    """Each committed split's first clips, decoded, are what the default clip length renders today."""

    windows = world_windows([str(ROOT / "data" / "world" / f"{split}-000000.tar")], 17, 4, limit=4)
    batch = next(iter(windows))
    frames, captions, _ = render_batch([0, 1, 2, 3], split)
    assert batch["key"] == [f"{split}_{i:06d}" for i in range(4)] and batch["caption"] == captions
    clips = torch.cat([batch["context"], batch["target"][:, 1:]], 1)  # (4, 20, 64, 64, 3)
    torch.testing.assert_close(clips, frames, rtol=0, atol=0)


@pytest.mark.parametrize("future", [3 * 16 + 1, 17])
def test_the_long_held_out_split_loads_as_rollout_windows(future):
    """data=world_long's shard, as Predictor.held_out reads it: every clip gives a window of 4 context
    + 49 future frames (3 windows of 17 in turn) from its start, or of 4 + 17 (the first window only);
    both are the held-out clips continued, the first 20 frames those of heldout-000000.tar."""
    from foresight.data.loader import ClipWindows, expand_shards

    def read(shards: str, future: int) -> dict:
        windows = ClipWindows(
            expand_shards(shards, "data.val_shards"),
            data.context_frames,
            [(data.height, data.width, future)],
            data.get("fps"),
            train=False,
            seed=0,
            strict=True,
            batch_size=32,
            limit=data.val_samples,
        )
        batches = list(windows)
        assert len(batches) == 1 and not windows.skips
        return batches[0]

    data = compose(["data=world_long", "logger=none"]).data
    batch = read(data.val_shards, future)
    assert batch["key"] == [f"heldout_long_{i:06d}" for i in range(32)]
    frames, captions, metas = render_batch(list(range(32)), "heldout", frames=scene.rollout_frames(3))
    assert batch["caption"] == captions and all(m["split"] == "heldout" for m in metas)
    assert batch["context"].shape == (32, 4, 64, 64, 3) and batch["target"].shape == (32, future, 64, 64, 3)
    torch.testing.assert_close(batch["context"], frames[:, :4], rtol=0, atol=0)
    torch.testing.assert_close(batch["target"], frames[:, 3 : 3 + future], rtol=0, atol=0)
    short = read(str(ROOT / "data" / "world" / "heldout-000000.tar"), 17)
    assert short["caption"] == captions
    torch.testing.assert_close(short["context"], frames[:, :4], rtol=0, atol=0)
    torch.testing.assert_close(short["target"], frames[:, 3 : scene.FRAMES], rtol=0, atol=0)


def test_render_command_writes_a_long_split_of_any_chunks(tmp_path, capsys):
    from foresight.world.cli import main

    args = [
        "render",
        "--out",
        str(tmp_path),
        "--train",
        "0",
        "--val",
        "0",
        "--heldout",
        "0",
        "--heldout-long",
        "2",
        "--train-long",
        "2",
    ]
    assert main([*args, "--chunks", "0"]) == 2 and "--chunks 1 or more" in capsys.readouterr().err
    assert main([*args, "--chunks", "2"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heldout_long-000000.tar", "train_long-000000.tar"]
    windows = world_windows([str(tmp_path / "heldout_long-000000.tar")], 33, 2)
    batch = next(iter(windows))
    frames, _, _ = render_batch([0, 1], "heldout", frames=scene.rollout_frames(2))  # (2, 36, 64, 64, 3)
    torch.testing.assert_close(batch["target"], frames[:, 3:], rtol=0, atol=0)
    # the long train clips, cut as data=world_rollout cuts them: a window and the next window's truth
    data = compose(["data=world_rollout", "logger=none"]).data
    assert data.train_chunks == 2 and "train_long-" in data.train_shards
    windows = world_windows([str(tmp_path / "train_long-000000.tar")], 17, 2, chunks=data.train_chunks)
    batch = next(iter(windows))
    frames, _, _ = render_batch([0, 1], "train", frames=scene.rollout_frames(2))
    torch.testing.assert_close(batch["target"], frames[:, 3:20], rtol=0, atol=0)
    torch.testing.assert_close(batch["continuation"], frames[:, 20:], rtol=0, atol=0)


def test_held_out_compositions_never_appear_in_training():
    for split in ("train", "val", "heldout"):
        for seed in range(300):
            s, instruction = layout(seed, split)
            shape = s.shapes[instruction.target]
            held = scene.HELDOUT_DIRECTIONS[(shape.colour, shape.kind)]
            assert (instruction.action == held) == (split == "heldout"), (split, seed, instruction)
    # every (colour, shape) pair keeps seven directions for training, and each direction is held out somewhere
    assert set(scene.HELDOUT_DIRECTIONS.values()) == set(scene.DIRECTIONS)


def test_world_shards_hold_the_rendered_clips(tmp_path):
    """Lossless shards: the loader reads back exactly the renderer's frames (the committed ones too)."""
    from foresight.world.shards import write_split

    write_split(tmp_path, "heldout", 3, per_shard=2)
    for shards in (
        [str(p) for p in sorted(tmp_path.glob("heldout-*.tar"))],
        [str(ROOT / "data" / "world" / "heldout-000000.tar")],
    ):
        windows = world_windows(shards, 17, 3, limit=3)
        batch = next(iter(windows))
        assert batch["key"] == ["heldout_000000", "heldout_000001", "heldout_000002"]
        frames, captions, _ = render_batch([0, 1, 2], "heldout")
        assert batch["caption"] == captions
        torch.testing.assert_close(batch["context"], frames[:, :4], rtol=0, atol=0)
        torch.testing.assert_close(batch["target"], frames[:, 3:], rtol=0, atol=0)


def test_shipped_world_files_match_their_checksums_and_load():
    from hydra.utils import instantiate

    from foresight.config import compose
    from foresight.world import ship

    assert ship.verify(WEIGHTS) == []
    cfg = compose(["model=world", "vlm=world", "logger=none"])
    assert cfg.model.twin is None and cfg.vlm.twin is None  # loaded, never built
    ltx = instantiate(cfg.model)
    vae, dit = ltx.vae.config, ltx.transformer.config
    assert (vae.latent_channels, vae.patch_size, vae.timestep_conditioning) == (128, 4, True)
    assert ltx.vae.spatial_compression_ratio == 32 and ltx.vae.temporal_compression_ratio == 8
    assert list(vae.decoder_block_out_channels) == list(cfg.model.architecture.vae.decoder_block_out_channels)
    assert dit.num_layers == cfg.model.architecture.transformer.num_layers
    assert ltx.vae.dtype == torch.float32  # fp16 files, loaded in the config's dtype
    assert instantiate(cfg.vlm).out_dim == 64


def test_checksums_catch_a_changed_file(tmp_path):
    import shutil

    from foresight.world import ship

    copy = tmp_path / "world"
    shutil.copytree(WEIGHTS / "vlm", copy / "vlm")
    ship.write_checksums(copy)
    assert ship.verify(copy) == []
    (copy / "vlm" / "config.json").write_text("{}")
    (copy / "extra.bin").write_bytes(b"x")
    problems = ship.verify(copy)
    assert any("vlm/config.json: checksum differs" in p for p in problems)
    assert any("extra.bin: present but not listed" in p for p in problems)


def test_pretraining_resumes_exactly_and_writes_a_loadable_checkpoint(tmp_path, monkeypatch):
    """A stage killed after two steps and run again ends with the weights of one never stopped."""
    from omegaconf import OmegaConf
    from safetensors.torch import load_file

    from foresight.models.ltx import LTXVideo
    from foresight.world import pretrain as pt
    from foresight.world.cli import model_config

    cfg = OmegaConf.to_container(model_config("tiny"), resolve=True)
    vae, dit = (
        pt.Settings(batch=2, lr=1e-3, warmup=2, steps=3),
        pt.Settings(batch=2, lr=1e-3, warmup=2, steps=2),
    )
    kw = dict(workers=0, log_every=100, stats_clips=2, monitor_clips=1)
    pt.pretrain(cfg, tmp_path / "a", tmp_path / "work_a", pt.STAGES, vae, dit, save_every=1e9, **kw)
    kw["save_every"] = 0.0  # the interrupted run saves its state after every step

    stream = pt.clip_stream

    def killed_after_two_steps(*args, **kwargs):
        yield from itertools.islice(stream(*args, **kwargs), 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(pt, "clip_stream", killed_after_two_steps)
    with pytest.raises(KeyboardInterrupt):
        pt.pretrain(cfg, tmp_path / "b", tmp_path / "work_b", ("vae",), vae, dit, **kw)
    monkeypatch.setattr(pt, "clip_stream", stream)
    pt.pretrain(cfg, tmp_path / "b", tmp_path / "work_b", pt.STAGES, vae, dit, **kw)
    for part in ("vae", "transformer"):
        a, b = (
            load_file(str(root / "ltx" / part / "diffusion_pytorch_model.safetensors"))
            for root in (tmp_path / "a", tmp_path / "b")
        )
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    with pytest.raises(ValueError, match="other vae settings"):
        other_lr = pt.Settings(batch=2, lr=2e-3, warmup=2, steps=3)
        pt.pretrain(cfg, tmp_path / "b", tmp_path / "work_b", ("vae",), other_lr, dit, **kw)
    ltx = LTXVideo(str(tmp_path / "b" / "ltx"), text_max_tokens=32)  # the hub checkpoint layout
    assert ltx.vae.latents_std.min() > 0 and not torch.equal(ltx.vae.latents_mean, torch.zeros(128))
    from foresight.world import ship

    assert ship.verify(tmp_path / "b") == []


# --- the world is what makes an option learn --------------------------------------------------------

MARGIN = 0.8  # the trained option's validation latent MSE must be below 0.8x copy-last's
STEPS = 40


def short_run(tmp_path, models: list[str]) -> dict:
    """`make train`'s run (option B on data=world), shortened to STEPS steps, validated once at the end."""
    from foresight.config import compose
    from foresight.training.train import train

    cfg = compose(
        [
            "+experiment=optionB",
            "data=world",
            *models,
            "logger=none",
            f"paths.output_dir={tmp_path}",
            f"trainer.max_steps={STEPS}",
            f"trainer.val_check_interval={STEPS}",
            "~callbacks.sample_videos",
            "~callbacks.training_state",
        ]
    )
    return train(cfg)


@pytest.mark.slow
def test_the_world_makes_option_b_beat_copy_last_and_use_the_instruction(tmp_path):
    m = short_run(tmp_path, ["model=world", "vlm=world"])["metrics"]
    assert m["val/latent_mse"] < MARGIN * m["val/latent_mse_copy_last"], m
    assert m["val/psnr"] > m["val/psnr_copy_last"], m
    # validation's own instruction gap: another clip's caption costs a quarter more latent error
    assert m["val/latent_mse_instruction_gap"] > 0.25 * m["val/latent_mse"], m
    assert m["val/psnr_instruction_gap"] > 0.5, m


@pytest.mark.slow
def test_the_same_run_on_random_twins_does_not_beat_copy_last(tmp_path, twin_dir):
    m = short_run(tmp_path, [f"paths.cache_dir={twin_dir}"])["metrics"]  # model=tiny, vlm=tiny
    assert not m["val/latent_mse"] < MARGIN * m["val/latent_mse_copy_last"], m
