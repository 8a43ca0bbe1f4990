"""Named model configurations: the tiny test matrix, the default model, bench-7b."""
from __future__ import annotations

import os
from dataclasses import replace

from .arch import VARIANTS, Config, Variant
from .storage import WEIGHT_TYPES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB_DIR = os.path.join(REPO, "tests", "data", "vocab")
TINY_VOCAB = 1024  # tiny models keep the first 1024 tokens of their real vocabulary

MATRIX_VARIANTS = list(VARIANTS)
MATRIX_TYPES = list(WEIGHT_TYPES)

# Layer counts differ on purpose (2 or 3), so nothing downstream can assume one; prosparse's predictor widths
# differ per layer. Every row length is a multiple of 32 (the Q8_0/Q4_0 block).
_TINY = {
    #              layers  n_head_kv  seed
    "llama":      (2,      2,         1001),
    "relu-llama": (3,      2,         1002),
    "prosparse":  (3,      2,         1003),
    "bamboo":     (2,      2,         1004),
    "falcon":     (2,      1,         1005),
    "falcon40b":  (3,      2,         1006),
    "opt":        (2,      4,         1007),
}
PROSPARSE_WIDTHS = (32, 64, 96)


def vocab_path(variant: Variant, vocab_dir: str | None = None) -> str:
    return os.path.join(vocab_dir or VOCAB_DIR, f"ggml-vocab-{variant.vocab}.gguf")


def tiny_config(variant_name: str, n_vocab: int) -> tuple[Config, int]:
    """(config, seed) of a matrix model."""
    n_layer, n_head_kv, seed = _TINY[variant_name]
    v = VARIANTS[variant_name]
    widths = ()
    if v.predictors:
        widths = tuple(PROSPARSE_WIDTHS[i % 3] if v.name == "prosparse" else 32 for i in range(n_layer))
    cfg = Config(v, n_vocab=n_vocab, n_embd=64, n_layer=n_layer, n_ff=256, n_head=4, n_head_kv=n_head_kv,
                 n_ctx_train=128, pred_widths=widths, name=f"tiny-{variant_name}")
    return cfg, seed


def default_config(n_vocab: int) -> tuple[Config, int]:
    """default.gguf: a small relu-llama (PowerInfer layout) with the full LLaMA vocabulary."""
    cfg = Config(VARIANTS["relu-llama"], n_vocab=n_vocab, n_embd=128, n_layer=4, n_ff=512, n_head=4,
                 n_head_kv=2, n_ctx_train=2048, pred_widths=(64,) * 4, name="powerinfer-default-random")
    return cfg, 42


BENCH_SEED = 7


def bench_config(n_vocab: int, n_layer: int = 32, n_embd: int = 4096, n_ff: int = 11008, n_head: int = 32,
                 pred_width: int = 1024, dense: bool = False) -> Config:
    """bench-7b (DESIGN.md 8): LLaMA-7B shapes, relu-llama PowerInfer layout; `dense` keeps the same weights
    with ffn_down instead of ffn_down_t and no predictors."""
    v = VARIANTS["relu-llama"]
    if dense:
        v = replace(v, name="relu-llama-dense", down_layout="ffn_down", predictors=False)
    return Config(v, n_vocab=n_vocab, n_embd=n_embd, n_layer=n_layer, n_ff=n_ff, n_head=n_head,
                  n_head_kv=n_head, n_ctx_train=4096, pred_widths=() if dense else (pred_width,) * n_layer,
                  norm_eps=1e-5, name="bench-7b-dense" if dense else "bench-7b")


def matrix_files(variants=None, types=None, with_default: bool = True) -> list[str]:
    """File names the matrix command writes (CMake asks for this list, so it is defined once)."""
    names = ["default.gguf"] if with_default else []
    for v in variants or MATRIX_VARIANTS:
        for t in types or MATRIX_TYPES:
            names.append(f"{v}-{t}.gguf")
            if VARIANTS[v].predictors:
                names.append(f"{v}-{t}.planted.npy")
    return names
