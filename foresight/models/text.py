"""LTX-Video's frozen T5 caption encoder (T5-v1.1-XXL in `text_encoder/`, tokenizer in `tokenizer/`)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import AutoTokenizer, T5Config, T5EncoderModel, T5Tokenizer

from foresight.models.hub import freeze, own_rng, resolve_pretrained, torch_dtype
from foresight.models.quantize import check as check_quantize
from foresight.models.quantize import quantize as quantize_linears
from foresight.models.tokenizers import word_tokenizer

# T5-v1.1-XXL's encoder: d_model 4096, 24 layers, 64 heads of 64, gated-GELU FFN of 10240.
T5_XXL = dict(
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    vocab_size=32128,
    feed_forward_proj="gated-gelu",
    is_encoder_decoder=False,
    use_cache=False,
)
T5_TINY = dict(T5_XXL, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4)


class FrozenTextEncoder(nn.Module):
    """Captions -> (states (B, T, d_model), mask (B, T) bool), padded to max_tokens as LTX does."""

    def __init__(
        self,
        pretrained: str,
        dtype: str = "float32",
        max_tokens: int = 256,
        twin: str | None = None,
        text_encoder_subfolder: str = "text_encoder",
        tokenizer_subfolder: str = "tokenizer",
        quantize: str | None = None,
        device: str | None = None,
        width: int = T5_XXL["d_model"],
    ) -> None:
        """twin="tiny": build a tiny twin into `pretrained` if absent, then load it. twin="random":
        random weights on `device` with the offline tokenizer (memory and speed benchmarks): T5-XXL's
        encoder, or the tiny twin's for width=64 (a DiT reading 64-wide captions).
        quantize: "int8" stores the linear weights as int8 (foresight.models.quantize)."""
        super().__init__()
        check_quantize(quantize, "model.text_encoder_quantize")
        if twin == "random":
            config = {c["d_model"]: c for c in (T5_XXL, T5_TINY)}.get(width)
            if config is None:
                raise ValueError(f"a random T5 is T5-XXL (width 4096) or the tiny twin's (64), not {width}")
            self.tokenizer = word_tokenizer([], pad="<pad>", eos="</s>", unk="<unk>", append_eos=True)
            with torch.device(device or "cpu"):
                model = T5EncoderModel(T5Config(**config)).to(torch_dtype(dtype))
        else:
            if twin is not None and not Path(pretrained).exists():
                build_tiny_text_encoder(pretrained)
            source = resolve_pretrained(
                pretrained, [f"{text_encoder_subfolder}/config.json", tokenizer_subfolder]
            )
            self.tokenizer = load_tokenizer(source, tokenizer_subfolder)
            model = T5EncoderModel.from_pretrained(
                source, subfolder=text_encoder_subfolder, dtype=torch_dtype(dtype)
            )
        self.model = freeze(quantize_linears(model, quantize, "model.text_encoder_quantize"))
        self.max_tokens = max_tokens
        self.out_dim = self.model.config.d_model

    def train(self, mode: bool = True) -> "FrozenTextEncoder":
        return super().train(False)

    @torch.no_grad()
    def forward(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        tok = self.tokenizer(
            list(captions),
            padding="max_length",
            max_length=self.max_tokens,
            truncation=True,
            return_tensors="pt",
        )
        device = self.model.device
        mask = tok.attention_mask.to(device)  # (B, T)
        states = self.model(
            input_ids=tok.input_ids.to(device), attention_mask=mask
        ).last_hidden_state  # (B, T, D)
        return states, mask.bool()


def load_tokenizer(source: str, subfolder: str):
    """The caption tokenizer. LTX's releases ship T5's as `spiece.model` (a sentencepiece model,
    converted by transformers with the `sentencepiece` package); a folder holding only that file
    names no class, so it is read as T5's. Twins ship a `tokenizer.json`."""
    folder = Path(source) / subfolder
    if (folder / "spiece.model").is_file() and not (folder / "tokenizer_config.json").is_file():
        return T5Tokenizer.from_pretrained(source, subfolder=subfolder)
    return AutoTokenizer.from_pretrained(source, subfolder=subfolder)


@own_rng
def build_tiny_text_encoder(directory: str | Path, seed: int = 0) -> None:
    """Save a random 2-layer T5 encoder (d_model 64) and an offline tokenizer under directory/."""
    directory = Path(directory)
    tokenizer = word_tokenizer([], pad="<pad>", eos="</s>", unk="<unk>", append_eos=True)
    torch.manual_seed(seed)
    model = T5EncoderModel(
        T5Config(**dict(T5_TINY, vocab_size=len(tokenizer), pad_token_id=0, eos_token_id=1))
    )
    model.save_pretrained(directory / "text_encoder")
    tokenizer.save_pretrained(directory / "tokenizer")
