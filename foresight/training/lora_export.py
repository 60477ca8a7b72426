"""The IC-LoRA in the formats other tools read.

- `pytorch_lora_weights.safetensors`: diffusers' format (`transformer.`-prefixed peft keys, adapter
  config in the metadata), what `LTXConditionPipeline.load_lora_weights(dir)` loads.
- `lora_diffusion_model.safetensors`: the same tensors prefixed `diffusion_model.`, the layout
  ComfyUI-style LTX tools read.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import LTXConditionPipeline
from safetensors.torch import save_file
from torch import Tensor

from foresight.models.ltx import LTXVideo

DIFFUSERS_FILE = "pytorch_lora_weights.safetensors"
DIFFUSION_MODEL_FILE = "lora_diffusion_model.safetensors"


def export_lora(ltx: LTXVideo, directory: str | Path, lora: dict[str, Tensor] | None = None) -> list[Path]:
    """Write the DiT's LoRA in both formats under directory; returns the files written.

    lora: the LoRA tensors by transformer-relative name (default: read from the transformer; under
    FSDP the caller passes the gathered ones)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    transformer = ltx.transformer
    if lora is None:
        lora = {n: p for n, p in transformer.named_parameters() if "lora_" in n}
    # peft's names carry the adapter name (`to_q.lora_A.default.weight`); the files do not. (Done here
    # rather than by peft's get_peft_model_state_dict, which drops every key under FSDP's wrappers.)
    state = {
        k.replace(".default.", "."): v.detach().contiguous().cpu() for k, v in lora.items() if "lora_" in k
    }
    config = transformer.peft_config["default"].to_dict()
    metadata = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    LTXConditionPipeline.save_lora_weights(
        directory, transformer_lora_layers=state, transformer_lora_adapter_metadata=metadata
    )
    save_file({f"diffusion_model.{k}": v for k, v in state.items()}, str(directory / DIFFUSION_MODEL_FILE))
    return [directory / DIFFUSERS_FILE, directory / DIFFUSION_MODEL_FILE]
