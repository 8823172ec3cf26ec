"""The course's two models: an MLP for digits and a tiny decoder-only transformer LM.

The transformer follows the layout of nanoGPT (Karpathy, 2022): token + position embeddings,
``n_layer`` pre-norm blocks of causal self-attention and an MLP, a final LayerNorm and a linear
head. Attention is written out by hand (no fused kernel) so lessons can look at its weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .checks import check_int, check_number, check_positive_int


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` runs the block in eval mode (dropout off, batch-norm on running
    statistics) and puts back the mode the model had, also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a parameter-free model)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


class MLP(nn.Module):
    """A fully connected ReLU network, e.g. ``MLP((64, 256, 256, 10))``.

    ``features(x)`` gives the last hidden layer (N, sizes[-2]); ``head`` maps it to the logits.
    """

    def __init__(self, sizes: Sequence[int] = (64, 256, 256, 10)):
        super().__init__()
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
            raise ValueError(f"sizes must be at least two positive ints, e.g. (64, 256, 10), got {sizes!r}")
        self.sizes = tuple(check_positive_int("every size in sizes", s) for s in sizes)
        layers: list[nn.Module] = []
        for d_in, d_out in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(sizes[-2], sizes[-1])

    def features(self, x: Tensor) -> Tensor:
        """(N, sizes[0]) -> (N, sizes[-2])."""
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"expected input of shape (N, {self.sizes[0]}), got {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """(N, sizes[0]) -> logits (N, sizes[-1])."""
        return self.head(self.features(x))


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t only sees positions <= t."""

    def __init__(self, n_embd: int, n_head: int, block_size: int):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        mask = torch.tril(torch.ones(block_size, block_size, dtype=torch.bool))
        self.register_buffer("mask", mask.view(1, 1, block_size, block_size), persistent=False)
        self.last_attention: Tensor | None = None  # (B, H, T, T), kept when asked for

    def forward(self, x: Tensor, keep_attention: bool = False) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, H, T, C/H)
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])  # (B, H, T, T)
        scores = scores.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
        attention = F.softmax(scores, dim=-1)
        self.last_attention = attention.detach() if keep_attention else None
        y = (attention @ v).transpose(1, 2).reshape(B, T, C)
        return self.proj(y)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, n_embd: int, n_head: int, block_size: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x: Tensor, keep_attention: bool = False) -> Tensor:
        x = x + self.attn(self.ln1(x), keep_attention)
        return x + self.mlp(self.ln2(x))


@dataclass(frozen=True)
class TinyLMConfig:
    """The shape of a ``TinyLM`` (as nanoGPT's ``GPTConfig``): vocabulary, context length and size.

    ``block_size`` is the longest context in characters; ``n_embd`` must be divisible by ``n_head``.
    """

    vocab_size: int
    block_size: int = 32
    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 32

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


class TinyLM(nn.Module):
    """A character-level, decoder-only transformer language model: ``TinyLM(TinyLMConfig(vocab_size=29))``."""

    def __init__(self, config: TinyLMConfig):
        super().__init__()
        if not isinstance(config, TinyLMConfig):
            raise TypeError(f"config must be a forgetkit TinyLMConfig, e.g. TinyLMConfig(vocab_size=29), "
                            f"got {type(config).__name__}")
        self.config = config
        self.block_size = config.block_size
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config.n_embd, config.n_head, config.block_size)
                                    for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size)

    def hidden_states(self, idx: Tensor, keep_attention: bool = False) -> list[Tensor]:
        """The residual stream after the embeddings and after each block: n_layer + 1 tensors (B, T, C)."""
        if idx.ndim != 2 or idx.dtype != torch.int64:
            raise ValueError(f"idx must be an int64 tensor of shape (B, T), got {idx.dtype} {tuple(idx.shape)}")
        T = idx.shape[1]
        if T > self.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.block_size}")
        positions = torch.arange(T, device=idx.device)
        x = self.token_embedding(idx) + self.position_embedding(positions)
        states = [x]
        for block in self.blocks:
            x = block(x, keep_attention)
            states.append(x)
        return states

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) -> logits (B, T, vocab), and the mean cross-entropy if ``targets`` (B, T) given."""
        logits = self.lm_head(self.ln_f(self.hidden_states(idx)[-1]))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx: Tensor) -> list[Tensor]:
        """Attention weights of every layer: n_layer tensors (B, H, T, T), rows sum to 1."""
        self.hidden_states(idx, keep_attention=True)
        maps = [block.attn.last_attention for block in self.blocks]
        for block in self.blocks:
            block.attn.last_attention = None
        return maps  # type: ignore[return-value]

    @torch.no_grad()
    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
        """Extend idx (B, T) by sampling ``max_new_tokens`` characters; returns (B, T + max_new_tokens).

        Runs in eval mode (the model's mode is restored afterwards).
        """
        check_int("max_new_tokens", max_new_tokens, low=0)
        check_number("temperature", temperature, low=0.0, low_open=True)
        with eval_mode(self):
            for _ in range(max_new_tokens):
                logits, _ = self(idx[:, -self.block_size :])
                probs = F.softmax(logits[:, -1, :] / temperature, dim=-1)
                # sample on the CPU so the same generator gives the same text on any device
                next_id = torch.multinomial(probs.cpu(), 1, generator=generator).to(idx.device)
                idx = torch.cat([idx, next_id], dim=1)
        return idx
