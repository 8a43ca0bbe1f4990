#!/usr/bin/env python3
"""Writes libpowerinfer's test models (GGUF, random weights, planted activation sparsity).

  make_test_model.py model --variant relu-llama --type q4_0 --out m.gguf [--layers 4] [--planted-out m.npy]
  make_test_model.py matrix --out-dir build/models          # default.gguf + every variant x type
  make_test_model.py matrix --list                          # the file names matrix writes
  make_test_model.py default --out default.gguf
  make_test_model.py bench-7b --type f16 --out bench-7b-f16.gguf [--dense] [--layers 2]

Conventions: docs/MODEL_FILES.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

# Our matrices are small; OpenBLAS threads only fight over the shared cores (measured: 28x slower under load).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pimodels import models, presets  # noqa: E402
from pimodels.arch import VARIANTS  # noqa: E402
from pimodels.storage import WEIGHT_TYPES  # noqa: E402


def _csv(s: str | None, allowed) -> list[str] | None:
    if not s:
        return None
    items = s.split(",")
    bad = [i for i in items if i not in allowed]
    if bad:
        raise SystemExit(f"unknown: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab-dir", help=f"where ggml-vocab-*.gguf are (default {presets.VOCAB_DIR})")
    sub = ap.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("model", help="one tiny model")
    m.add_argument("--variant", required=True, choices=list(VARIANTS))
    m.add_argument("--type", required=True, choices=list(WEIGHT_TYPES))
    m.add_argument("--out", required=True)
    m.add_argument("--full-vocab", action="store_true", help="keep the whole vocabulary, not its first 1024")
    m.add_argument("--layers", type=int)
    m.add_argument("--embd", type=int)
    m.add_argument("--ff", type=int)
    m.add_argument("--heads", type=int)
    m.add_argument("--heads-kv", type=int)
    m.add_argument("--ctx", type=int)
    m.add_argument("--pred-width", type=int, help="one predictor width for every layer")
    m.add_argument("--seed", type=int)
    m.add_argument("--planted-out", help="write the planted firing probabilities (n_layer, n_ff) here (.npy)")
    m.add_argument("--act-freq", action="store_true", help="also store them as blk.N.ffn_act_freq tensors")

    x = sub.add_parser("matrix", help="default.gguf and every variant x type")
    x.add_argument("--out-dir")
    x.add_argument("--variants", help="comma-separated subset")
    x.add_argument("--types", help="comma-separated subset")
    x.add_argument("--no-default", action="store_true")
    x.add_argument("--list", action="store_true", help="print the file names, write nothing")

    d = sub.add_parser("default", help="default.gguf")
    d.add_argument("--out", required=True)

    b = sub.add_parser("bench-7b", help="bench-7b (DESIGN.md 8), streamed")
    b.add_argument("--type", required=True, choices=list(WEIGHT_TYPES))
    b.add_argument("--out", required=True)
    b.add_argument("--dense", action="store_true", help="same weights, ffn_down layout, no predictors")
    b.add_argument("--layers", type=int, default=32, help="fewer layers for tests")
    b.add_argument("--embd", type=int, default=4096)
    b.add_argument("--ff", type=int, default=11008)
    b.add_argument("--heads", type=int, default=32)
    b.add_argument("--pred-width", type=int, default=1024)
    b.add_argument("--n-vocab", type=int, help="truncate the vocabulary (tests)")
    b.add_argument("--planted-out")
    b.add_argument("--act-freq", action="store_true")
    b.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    t0 = time.time()
    if args.cmd == "model":
        over = {k: v for k, v in dict(n_layer=args.layers, n_embd=args.embd, n_ff=args.ff, n_head=args.heads,
                                      n_head_kv=args.heads_kv, n_ctx_train=args.ctx, seed=args.seed).items()
                if v is not None}
        if VARIANTS[args.variant].predictors and (args.pred_width or args.layers):
            n_layer = args.layers or presets.tiny_config(args.variant, 1)[0].n_layer
            over["pred_widths"] = (args.pred_width or 32,) * n_layer
        models.write_tiny(args.out, args.variant, args.type, full_vocab=args.full_vocab, vocab_dir=args.vocab_dir,
                          planted_out=args.planted_out, act_freq=args.act_freq, **over)
    elif args.cmd == "matrix":
        variants = _csv(args.variants, list(VARIANTS))
        types = _csv(args.types, list(WEIGHT_TYPES))
        if args.list:
            print("\n".join(presets.matrix_files(variants, types, not args.no_default)))
            return 0
        if not args.out_dir:
            ap.error("matrix needs --out-dir (or --list)")
        models.write_matrix(args.out_dir, variants, types, not args.no_default, args.vocab_dir, verbose=True)
    elif args.cmd == "default":
        models.write_default(args.out, args.vocab_dir)
    elif args.cmd == "bench-7b":
        planted = models.write_bench(args.out, args.type, dense=args.dense, vocab_dir=args.vocab_dir,
                                     n_vocab=args.n_vocab, planted_out=args.planted_out, act_freq=args.act_freq,
                                     progress=not args.quiet, n_layer=args.layers, n_embd=args.embd, n_ff=args.ff,
                                     n_head=args.heads, pred_width=args.pred_width)
        if planted is not None and not args.quiet:
            print(f"planted mean firing probability {planted.mean():.4f}", file=sys.stderr)
    print(f"done in {time.time() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
