"""The models the project uses, by name: tiny matrix models, default.gguf, bench-7b."""
from __future__ import annotations

import os
import sys
import time

from . import presets
from .arch import VARIANTS, Config
from .build import write_small, write_streamed
from .vocab import read_vocab, truncate


def load_vocab(variant_name: str, n_tokens: int | None, vocab_dir: str | None = None):
    """The variant's real vocabulary, truncated to n_tokens (None: full)."""
    vocab = read_vocab(presets.vocab_path(VARIANTS[variant_name], vocab_dir))
    return vocab if n_tokens is None else truncate(vocab, n_tokens)


def write_tiny(path: str, variant: str, wtype: str, full_vocab: bool = False, vocab_dir: str | None = None,
               planted_out: str | None = None, act_freq: bool = False, **overrides):
    """A matrix model; `overrides` replace Config fields (e.g. n_layer=4, pred_widths=(32,)*4) or the seed."""
    vocab = load_vocab(variant, None if full_vocab else presets.TINY_VOCAB, vocab_dir)
    cfg, seed = presets.tiny_config(variant, vocab.n_tokens)
    seed = overrides.pop("seed", seed)
    if overrides:
        cfg = cfg.with_(**overrides)
    return write_small(path, cfg, wtype, seed, vocab, planted_out=planted_out, act_freq=act_freq)


def write_default(path: str, vocab_dir: str | None = None):
    vocab = load_vocab("relu-llama", None, vocab_dir)
    cfg, seed = presets.default_config(vocab.n_tokens)
    return write_small(path, cfg, "f16", seed, vocab)


def write_matrix(out_dir: str, variants=None, types=None, with_default: bool = True,
                 vocab_dir: str | None = None, verbose: bool = False) -> list[str]:
    """default.gguf plus <variant>-<type>.gguf (+ .planted.npy for sparse variants) for every variant x type."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    t0 = time.time()
    if with_default:
        written.append(os.path.join(out_dir, "default.gguf"))
        write_default(written[-1], vocab_dir)
    for v in variants or presets.MATRIX_VARIANTS:
        for t in types or presets.MATRIX_TYPES:
            path = os.path.join(out_dir, f"{v}-{t}.gguf")
            planted = os.path.join(out_dir, f"{v}-{t}.planted.npy") if VARIANTS[v].predictors else None
            write_tiny(path, v, t, vocab_dir=vocab_dir, planted_out=planted)
            written += [path] + ([planted] if planted else [])
            if verbose:
                print(f"{time.time() - t0:6.1f}s {path}", file=sys.stderr)
    return written


def bench_setup(dense: bool = False, vocab_dir: str | None = None, n_vocab: int | None = None,
                **shape) -> tuple[Config, object]:
    vocab = load_vocab("relu-llama", n_vocab, vocab_dir)
    return presets.bench_config(vocab.n_tokens, dense=dense, **shape), vocab


def write_bench(path: str, wtype: str, dense: bool = False, vocab_dir: str | None = None,
                n_vocab: int | None = None, planted_out: str | None = None, act_freq: bool = False,
                progress: bool = True, **shape):
    """bench-7b (or a scaled-down copy: shape overrides n_layer, n_embd, n_ff, n_head, pred_width)."""
    cfg, vocab = bench_setup(dense, vocab_dir, n_vocab, **shape)
    return write_streamed(path, cfg, wtype, presets.BENCH_SEED, vocab, planted_out=planted_out,
                          act_freq=act_freq, progress=progress)
