"""The feature cache: frozen-encoder outputs written once as shards, read back as `Features`.

`python preprocess.py` (same config groups as train.py) runs the VLM, T5 and VAE over the video
shards and writes, per input shard, a feature shard of the same name: per clip `vlm.npy` (L, D),
`vlm_mask.npy` (L,), `text.npy` (T, D), `text_mask.npy` (T,), `latents.npy` (128, f, h, w),
`context_latents.npy` (128, C-1, h, w: the earlier context frames, each encoded alone, for the prefix
baseline) and `meta.json` (fps, caption, FEATURE_FORMAT); with `frames: true` also `context.npy` /
`target.npy` (uint8), which validation needs for pixel metrics and the copy-last-frame baseline. Only
`.npy` and `.json`: nothing is ever unpickled (`np.load(allow_pickle=False)`). The record and the
cache: docs/features.md.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import DataLoader

from foresight.background import read_ahead
from foresight.data.loader import ClipWindows, expand_shards
from foresight.data.stream import BadSample, ResumableBatches, ResumableData, shard_samples
from foresight.features import Features, encode_batch
from foresight.throughput import Throughput

# in each sample's meta.json. 2 (2026-12-02): the VLM reads the video at Qwen2.5-VL's M-RoPE positions;
# a cache without it (1) holds VLM states of the video read at plain 1D positions, which neither
# live training nor predict.py produce any more: training on it would teach the adapter other states
FEATURE_FORMAT = 2


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _load_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


@torch.no_grad()
def write_feature_shard(
    windows: ClipWindows, out_path: Path, vlm, ltx, frames: bool, throughput: Throughput | None = None
) -> int:
    """Encode every window of `windows` (one input shard) into out_path, atomically; returns the count.
    throughput: told of each batch written."""
    tmp = out_path.with_name(f".{out_path.name}.tmp{os.getpid()}")
    count = 0
    device = next(ltx.parameters()).device
    loader = DataLoader(windows, batch_size=None)  # windows batch themselves, one bucket a batch
    with wds.TarWriter(str(tmp)) as sink:
        for batch in read_ahead(loader):  # the next batch is decoded while this one is encoded
            feats = encode_batch(move_data_to_device(batch, device), vlm, ltx, context_latents=True)
            for i, key in enumerate(batch["key"]):
                n_vlm = int(feats.vlm_mask[i].sum())  # right-padded: keep the real tokens only
                sample = {
                    "__key__": key,
                    "vlm.npy": _npy(feats.vlm_states[i, :n_vlm].float().cpu().numpy()),
                    "vlm_mask.npy": _npy(feats.vlm_mask[i, :n_vlm].cpu().numpy()),
                    "text.npy": _npy(feats.text[i].float().cpu().numpy()),
                    "text_mask.npy": _npy(feats.text_mask[i].cpu().numpy()),
                    "latents.npy": _npy(feats.target[i].float().cpu().numpy()),
                    "context_latents.npy": _npy(feats.context_latents[i].float().cpu().numpy()),
                    "meta.json": json.dumps(
                        {"fps": float(feats.fps[i]), "caption": batch["caption"][i], "format": FEATURE_FORMAT}
                    ),
                }
                if frames:
                    sample["context.npy"] = _npy(batch["context"][i].numpy())
                    sample["target.npy"] = _npy(batch["target"][i].numpy())
                sink.write(sample)
                count += 1
            if throughput is not None:
                throughput.add(len(batch["key"]))
    os.replace(tmp, out_path)
    return count


class FeatureSamples(ResumableBatches):
    """Feature shards -> batches of one latent grid each (endless and random for training)."""

    def make_item(self, sample: dict, rng) -> dict:
        try:
            item = {k[:-4]: _load_npy(v) for k, v in sample.items() if k.endswith(".npy")}
            item["meta"] = json.loads(sample["meta.json"])
        except (KeyError, ValueError) as e:
            raise BadSample(
                "bad_features", f"unreadable cached features ({e}); re-run preprocess.py"
            ) from None
        item["key"] = sample["__key__"]
        return item

    def bucket_of(self, item: dict) -> tuple[int, ...]:
        return item["latents"].shape

    def collate(self, items: list[dict]) -> dict:
        return collate_features(items)


def collate_features(samples: list[dict]) -> dict:
    """Stack cached samples into a batch holding a `Features` (VLM states right-padded to the longest)."""
    longest = max(len(s["vlm"]) for s in samples)
    dim = samples[0]["vlm"].shape[1]
    states = torch.zeros(len(samples), longest, dim)
    mask = torch.zeros(len(samples), longest, dtype=torch.bool)
    for i, s in enumerate(samples):
        states[i, : len(s["vlm"])] = torch.from_numpy(s["vlm"])
        mask[i, : len(s["vlm"])] = torch.from_numpy(s["vlm_mask"])
    latents = torch.from_numpy(np.stack([s["latents"] for s in samples]))  # (B, 128, f, h, w)
    fps = torch.tensor([s["meta"]["fps"] for s in samples], dtype=torch.float32)
    context = (
        torch.from_numpy(np.stack([s["context_latents"] for s in samples]))  # (B, 128, C-1, h, w)
        if all("context_latents" in s for s in samples)
        else None
    )  # caches written before they were
    feats = Features(
        states,
        mask,
        torch.from_numpy(np.stack([s["text"] for s in samples])),
        torch.from_numpy(np.stack([s["text_mask"] for s in samples])),
        latents[:, :, :1].clone(),
        tuple(latents.shape[2:]),
        fps,
        latents,
        context,
    )
    batch = {
        "features": feats,
        "caption": [s["meta"]["caption"] for s in samples],
        "key": [s["key"] for s in samples],
        "fps": fps,
    }
    if all("context" in s for s in samples):
        batch["context"] = torch.from_numpy(np.stack([s["context"] for s in samples]))
        batch["target"] = torch.from_numpy(np.stack([s["target"] for s in samples]))
    return batch


class FeatureDataModule(ResumableData):
    """Train and validate from the feature cache instead of video (data=features)."""

    def __init__(
        self,
        train_shards: str,
        val_shards: str,
        batch_size: int = 4,
        val_batch_size: int = 4,
        num_workers: int = 0,
        open_shards: int = 4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        hint = "; run `python preprocess.py` first to write the feature cache"
        try:
            self.train_urls = expand_shards(train_shards, "data.train_shards")
            self.val_urls = expand_shards(val_shards, "data.val_shards")
        except FileNotFoundError as e:
            raise FileNotFoundError(str(e).split(";")[0] + hint) from None
        self.train_set = FeatureSamples(self.train_urls, True, seed, batch_size, open_shards=open_shards)
        self.val_set = FeatureSamples(self.val_urls, False, seed, val_batch_size)
        self.num_workers = num_workers

    def cached_widths(self) -> dict[str, int]:
        """{"vlm": width of the cached VLM states, "text": of the caption states}, from the first sample:
        training from the cache needs these instead of the frozen encoders themselves. A cache of
        another FEATURE_FORMAT is refused here, before anything trains on it."""
        url = self.train_urls[0]
        for _, sample in shard_samples(url):
            try:
                meta = json.loads(sample["meta.json"])
                widths = {name: int(_load_npy(sample[f"{name}.npy"]).shape[-1]) for name in ("vlm", "text")}
            except (KeyError, ValueError) as e:
                raise ValueError(
                    f"{url}: its first sample holds no readable cached features ({e}); "
                    f"re-run python preprocess.py"
                ) from None
            written = meta.get("format", 1)
            if written != FEATURE_FORMAT:
                raise ValueError(
                    f"{url}: a feature cache of format {written}, and this Foresight reads format "
                    f"{FEATURE_FORMAT} (since 2026-12-02 the VLM reads the video at Qwen2.5-VL's M-RoPE "
                    f"positions); re-run python preprocess.py into a new preprocess.out_dir"
                )
            return widths
        raise ValueError(f"{url} holds no samples; re-run python preprocess.py")


def preprocess_device(device: str | None, rank: int) -> torch.device:
    """preprocess.device, or by default this rank's GPU (cuda:LOCAL_RANK under torchrun) where there is
    one, else the CPU: the frozen models are moved there whatever device their config built them on."""
    if device:
        return torch.device(device)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())


def preprocess(cfg) -> dict[str, float]:
    """Write feature shards for the train and val shards of cfg.data; finished shards are skipped.
    Returns the clips written, the shards skipped, and the seconds and clips per second of this rank's
    writing, over all of it and after its first batch (foresight.throughput; models loaded before the
    clock starts: the throughput of caching, per GPU).

    Work is split across ranks by shard (RANK / WORLD_SIZE as torchrun sets them).
    """
    from hydra.utils import instantiate

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    data = instantiate(cfg.data)  # validates the window before any model loads
    out = Path(cfg.preprocess.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = preprocess_device(cfg.preprocess.get("device"), rank)
    if device.type == "cuda":  # what allocates on "the current GPU" (streams, handles) uses this rank's
        torch.cuda.set_device(device)
    vlm, ltx = instantiate(cfg.vlm).to(device), instantiate(cfg.model).to(device)
    written = {"written": 0, "skipped_shards": 0}
    throughput = Throughput()
    for split, urls, template in (
        ("train", data.train_urls, data.train_set),
        ("val", data.val_urls, data.val_set),
    ):
        for index, url in enumerate(urls):
            if index % world != rank:
                continue
            target = out / Path(url).name
            if target.exists():  # finished earlier: resume where we stopped
                written["skipped_shards"] += 1
                continue
            # the held-out window (start 0, in order) for every split: one fixed window per clip
            windows = ClipWindows(
                [url],
                template.c,
                template.buckets,
                template.fps,
                train=False,
                seed=template.seed,
                strict=template.strict,
                batch_size=cfg.preprocess.batch_size,
                prompt_template=template.prompt_template,
                resize_filter=template.resize_filter,
                max_upscale=template.max_upscale,
            )
            written["written"] += write_feature_shard(
                windows,
                target,
                vlm,
                ltx,
                frames=split == "val" or cfg.preprocess.frames,
                throughput=throughput,
            )
    return written | throughput.report()
