"""What a config read from a file may build: only the classes that Foresight's own configs name.

A checkpoint's metadata holds the config that built its model, and predict.py, evaluate.py and
`Predictor` rebuild the model from it with Hydra's `instantiate`, which calls whatever a
`_target_` names (builtins.open, shutil.copyfile, ...). A file is data, not code. So before
anything is built, the whole stored tree is checked:

- every `_target_`, at any depth (inside `_args_` lists too), must be one that a YAML file under
  conf/ names: our own classes and the few third-party ones our config groups use (torch.optim.AdamW,
  lightning.Trainer, ...). A prefix rule ("anything under foresight.") would not do: our package
  also holds functions that write files (foresight.eval.evaluate.write, foresight.cli.main);
- no value may be an interpolation (`${...}`): Hydra resolves the config before building it, and
  a resolver such as oc.create can turn a string into a new node with a `_target_` of its own.
  train.py stores resolved configs, so its files never hold one.

Anything else is refused with one line naming the file, the key path and the target. A run trained
with a class of the user's own (an extra callback, say) names it in a conf/ file to allow it: the
allow-list stays in the repository's hands, never in a file's.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from foresight.config import CONF_DIR


class UntrustedConfig(ValueError):
    """A config from a file names something Foresight's configs do not build."""


# `_target_`s named by earlier versions of conf/ (git log -p conf), old -> what builds it now: the
# checkpoints and training states they wrote stay loadable. Lightning's own classes that conf/ no
# longer names are still importable and map to themselves.
FORMER_TARGETS = {
    "lightning.pytorch.loggers.WandbLogger": "lightning.pytorch.loggers.WandbLogger",
    "lightning.pytorch.strategies.FSDPStrategy": "lightning.pytorch.strategies.FSDPStrategy",
    # the training machinery moved into foresight/training/, the feature cache to data/feature_cache.py
    "foresight.module.ForesightModule": "foresight.training.module.ForesightModule",
    "foresight.callbacks.SampleVideos": "foresight.training.callbacks.SampleVideos",
    "foresight.checkpoint.TrainableCheckpoint": "foresight.training.weights.TrainableCheckpoint",
    "foresight.checkpoint.TrainingState": "foresight.training.resume.TrainingState",
    "foresight.checkpoint.SafetensorsFSDP": "foresight.training.fsdp.SafetensorsFSDP",
    "foresight.progress.StepProgress": "foresight.training.progress.StepProgress",
    "foresight.progress.StepTimes": "foresight.training.progress.StepTimes",
    "foresight.loggers.WandbLogger": "foresight.training.loggers.WandbLogger",
    "foresight.data.features.FeatureDataModule": "foresight.data.feature_cache.FeatureDataModule",
    # training/checkpoint.py split into weights.py, resume.py and fsdp.py
    "foresight.training.checkpoint.TrainableCheckpoint": "foresight.training.weights.TrainableCheckpoint",
    "foresight.training.checkpoint.TrainingState": "foresight.training.resume.TrainingState",
    "foresight.training.checkpoint.SafetensorsFSDP": "foresight.training.fsdp.SafetensorsFSDP",
}


@functools.cache
def allowed_targets() -> frozenset[str]:
    """Every `_target_` that a YAML file under conf/ names, and the former names of FORMER_TARGETS."""
    targets = set(FORMER_TARGETS)
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        for _, node in walk(yaml.safe_load(path.read_text()), ""):
            target = node.get("_target_") if isinstance(node, dict) else None
            if isinstance(target, str) and "${" not in target:
                targets.add(target)
    return frozenset(targets)


def current_config(tree: Any) -> Any:
    """A plain stored config tree as conf/ writes it today, changed in place and returned; readers of
    stored configs run it after `check`, so that what is built from an older file is what conf/ builds:
    - every former `_target_` (FORMER_TARGETS) replaced by its current name;
    - `module.warmup_steps` (before the LR schedule was configured like the optimizer) becomes the
      `module.scheduler` node that gives the same schedule."""
    for _, node in walk(tree, ""):
        if isinstance(node, dict) and node.get("_target_") in FORMER_TARGETS:
            node["_target_"] = FORMER_TARGETS[node["_target_"]]
    module = tree.get("module") if isinstance(tree, dict) else None
    if isinstance(module, dict) and "warmup_steps" in module and "scheduler" not in module:
        total = (tree.get("trainer") or {}).get("max_steps", 1)
        module["scheduler"] = {
            "_target_": "foresight.training.schedules.warmup_cosine",
            "_partial_": True,
            "total_steps": total,
            "warmup_steps": module.pop("warmup_steps"),
            "floor": 0.1,
        }
    return tree


def walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(key path, node) for the node and everything below it (iterative: a file's nesting depth is
    the file's choice, not a recursion limit to hit)."""
    stack = [(path, node)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if isinstance(node, dict):
            stack += [(f"{path}.{key}" if path else str(key), value) for key, value in node.items()]
        elif isinstance(node, (list, tuple)):
            stack += [(f"{path}[{i}]", value) for i, value in enumerate(node)]


def check(tree: Any, source: str, root: str = "config") -> None:
    """Raise UntrustedConfig unless every `_target_` in `tree` is allowed and no value interpolates.

    tree: plain containers or an OmegaConf node (read unresolved); source: the file, for the message."""
    if isinstance(tree, (DictConfig, ListConfig)):
        tree = OmegaConf.to_container(tree, resolve=False)
    allowed = allowed_targets()
    for path, node in walk(tree, root):
        if isinstance(node, str) and "${" in node:
            raise UntrustedConfig(
                f"{source}: refusing {path}={node[:100]!r}: an interpolation in a stored config can "
                f"build new nodes when resolved; train.py stores resolved configs, so this file "
                f"was not written by it or was altered"
            )
        if (
            isinstance(node, dict)
            and "_target_" in node
            and not (isinstance(node["_target_"], str) and node["_target_"] in allowed)
        ):
            raise UntrustedConfig(
                f"{source}: refusing {path}._target_={node['_target_']!r}: a stored config may "
                f"only name classes that a YAML under conf/ names; this file was altered, or was "
                f"trained with a class of yours: then name it in a conf/ file to allow it"
            )


def build(node: Any, source: str, key: str, **kwargs) -> Any:
    """Hydra's instantiate on the config node `key` read from `source`, after `check` passes on all of it."""
    from foresight.training.train import instantiate

    check(node, source, root=f"config.{key}")
    return instantiate(node, **kwargs)
