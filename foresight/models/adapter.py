"""The trainable adapter: VLM hidden states -> whatever the chosen option feeds into LTX-Video.

A query transformer. Each output token is a learnable query plus a Fourier embedding of its
3-D position (latent frame, row, column), so one set of weights serves any bucket size and the
option decides where its outputs live (on the target grid for A/B, extra frames for C, a 1-D
row of text tokens for D). Queries cross-attend to the projected VLM states (masked), then
self-attend, then pass an MLP; the output head starts at zero so that at step 0 the adapter
predicts the data mean (A/B: normalised latents) or adds nothing (LoRA-style).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention on SDPA (flash/memory-efficient kernels on GPU)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"adapter.width={width} must be divisible by adapter.heads={heads}")
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        b, k, d = x.shape
        q = self.q(x).view(b, k, self.heads, -1).transpose(1, 2)  # (B, h, K, d/h)
        kv = self.kv(context).view(b, context.shape[1], 2, self.heads, -1)  # (B, L, 2, h, d/h)
        key, value = kv.permute(2, 0, 3, 1, 4)  # each (B, h, L, d/h)
        mask = None if context_mask is None else context_mask[:, None, None, :]  # (B, 1, 1, L)
        y = F.scaled_dot_product_attention(q, key, value, attn_mask=mask)  # (B, h, K, d/h)
        return self.out(y.transpose(1, 2).reshape(b, k, d))


class QueryBlock(nn.Module):
    """Pre-norm: cross-attention to the VLM, self-attention among queries, MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_cross, self.norm_ctx = nn.LayerNorm(width), nn.LayerNorm(width)
        self.cross = Attention(width, heads)
        self.norm_self = nn.LayerNorm(width)
        self.self_attn = Attention(width, heads)
        self.norm_mlp = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width)
        )

    def forward(self, q: Tensor, ctx: Tensor, ctx_mask: Tensor) -> Tensor:
        q = q + self.cross(self.norm_cross(q), self.norm_ctx(ctx), ctx_mask)  # (B, K, W)
        h = self.norm_self(q)
        q = q + self.self_attn(h, h)  # (B, K, W)
        return q + self.mlp(self.norm_mlp(q))  # (B, K, W)


def fourier_positions(pos: Tensor, freqs: int, max_period: float = 64.0) -> Tensor:
    """(..., 3) positions in latent units -> (..., 3 * 2 * freqs) sin/cos features."""
    scales = torch.exp(-math.log(max_period) * torch.arange(freqs, device=pos.device) / freqs)  # (freqs,)
    angles = pos[..., None] * scales * 2 * math.pi  # (..., 3, freqs)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


class QueryAdapter(nn.Module):
    """(B, L, in_dim) VLM states + mask, (B or 1, K, 3) query positions -> (B, K, out_dim)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        width: int = 256,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        pos_freqs: int = 8,
    ) -> None:
        super().__init__()
        self.pos_freqs = pos_freqs
        self.in_proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, width))
        self.query = nn.Parameter(torch.randn(width) * 0.02)
        self.pos_proj = nn.Linear(6 * pos_freqs, width)
        self.blocks = nn.ModuleList(QueryBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_dim)
        nn.init.zeros_(self.head.weight)  # zero output at init: the data mean / no change
        nn.init.zeros_(self.head.bias)

    def forward(self, states: Tensor, mask: Tensor, positions: Tensor) -> Tensor:
        ctx = self.in_proj(states.to(self.head.weight.dtype))  # (B, L, W)
        pos = self.pos_proj(fourier_positions(positions.to(ctx), self.pos_freqs))  # (B|1, K, W)
        q = (self.query + pos).expand(ctx.shape[0], -1, -1)  # (B, K, W)
        for block in self.blocks:
            q = block(q, ctx, mask)
        return self.head(self.out_norm(q))  # (B, K, out_dim)
