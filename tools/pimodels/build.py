"""Building model files: random weights, planted predictors, writing.

Small models (the test matrix, default.gguf) are built in memory and their predictors are calibrated against
the model's own hidden states: layer by layer, the reference forward pass (tests/reference/reference.py), run
sparse over random token sequences through the already-planted layers, gives the predictor inputs. Large
models (bench-7b) are streamed tensor by tensor and calibrated against random Gaussian hidden states
(DESIGN.md 8), which suffices because the firing condition depends only on the direction of the tap.
"""
from __future__ import annotations

import os
import sys

import numpy as np
from gguf import GGMLQuantizationType

from . import arch as archmod
from .arch import Config, tensor_specs
from .sparsity import Planting, row_offsets
from .storage import TensorPlan, decode, encode, storage_type, write_gguf
from .vocab import Vocab
from .weights import init_tensor, rng_for

_REF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "tests", "reference")


def _reference():
    if _REF_DIR not in sys.path:
        sys.path.insert(0, _REF_DIR)
    import reference  # noqa: E402  (tests/reference/reference.py)
    return reference


def _metadata(cfg: Config, wtype: str, name: str):
    kv = archmod.metadata(cfg, wtype, name)
    meta = {"general.architecture": cfg.variant.arch, **{k: v for k, v, _ in kv}}
    return kv, meta


def _act_freq_plans(planted: np.ndarray) -> list[TensorPlan]:
    """Optional blk.N.ffn_act_freq (F32, n_ff): the planted probabilities as an activation profile (DESIGN.md 6)."""
    return [TensorPlan(f"blk.{il}.ffn_act_freq", (planted.shape[1],), GGMLQuantizationType.F32,
                       lambda row=planted[il]: np.ascontiguousarray(row, dtype=np.float32))
            for il in range(planted.shape[0])]


def write_small(path: str, cfg: Config, wtype: str, seed: int, vocab: Vocab, planting: Planting = Planting(),
                planted_out: str | None = None, act_freq: bool = False, n_calib_seq: int = 32,
                calib_len: int = 64) -> np.ndarray | None:
    """Writes a small model; returns the planted probabilities (n_layer, n_ff) or None for a dense model."""
    if vocab.n_tokens != cfg.n_vocab:
        raise ValueError(f"vocab has {vocab.n_tokens} tokens, config says {cfg.n_vocab}")
    specs = tensor_specs(cfg)
    qtypes = {s.name: storage_type(s.shape, wtype) for s in specs}
    raw = {s.name: init_tensor(s, seed) for s in specs}
    stored = {n: encode(a, qtypes[n]) for n, a in raw.items()}
    kv, meta = _metadata(cfg, wtype, cfg.name or os.path.basename(path))

    planted = None
    if cfg.variant.predictors:
        planted = planting.sample(rng_for(seed, "planted"), cfg.n_layer, cfg.n_ff)
        _calibrate_small(cfg, meta, qtypes, raw, stored, planted, seed, n_calib_seq, calib_len)

    plans = [TensorPlan(s.name, s.shape, qtypes[s.name], lambda n=s.name: stored[n]) for s in specs]
    if act_freq and planted is not None:
        plans += _act_freq_plans(planted)
    write_gguf(path, cfg.variant.arch, kv, vocab.fields, plans)
    if planted_out and planted is not None:
        np.save(planted_out, planted)
    return planted


def _calibrate_small(cfg, meta, qtypes, raw, stored, planted, seed, n_seq, seq_len):
    """Plants layer by layer, each against the taps that the stored (already planted) layers below produce."""
    ref = _reference()
    rng = rng_for(seed, "calibration-tokens")
    seq_len = min(seq_len, cfg.n_ctx_train)
    seqs = [rng.integers(0, cfg.n_vocab, size=seq_len) for _ in range(n_seq)]
    decoded = {n: (decode(d, qtypes[n]), qtypes[n].name) for n, d in stored.items()}
    for il in range(cfg.n_layer):
        model = ref.Model(meta, decoded)
        taps = np.concatenate([model.taps(s, il, sparse=True) for s in seqs])
        fc1, fc2 = f"blk.{il}.fc1.weight", f"blk.{il}.fc2.weight"
        c = row_offsets(decoded[fc1][0], raw[fc2], taps, planted[il])
        stored[fc2] = encode(raw[fc2].astype(np.float64) + c[:, None], qtypes[fc2])
        decoded[fc2] = (decode(stored[fc2], qtypes[fc2]), qtypes[fc2].name)


def write_streamed(path: str, cfg: Config, wtype: str, seed: int, vocab: Vocab, planting: Planting = Planting(),
                   planted_out: str | None = None, act_freq: bool = False, n_calib: int = 2048,
                   progress: bool = True) -> np.ndarray | None:
    """Writes a model of any size, producing one tensor at a time (peak memory: a few copies of the largest
    tensor). Predictors are calibrated per layer on n_calib Gaussian taps."""
    if vocab.n_tokens != cfg.n_vocab:
        raise ValueError(f"vocab has {vocab.n_tokens} tokens, config says {cfg.n_vocab}")
    specs = tensor_specs(cfg)
    by_name = {s.name: s for s in specs}
    kv, _ = _metadata(cfg, wtype, cfg.name or os.path.basename(path))
    planted = None
    if cfg.variant.predictors:
        planted = planting.sample(rng_for(seed, "planted"), cfg.n_layer, cfg.n_ff)

    def produce(spec):
        qtype = storage_type(spec.shape, wtype)
        if spec.role != "fc2":
            return encode(init_tensor(spec, seed), qtype)
        il = int(spec.name.split(".")[1])
        fc1_spec = by_name[f"blk.{il}.fc1.weight"]
        fc1_q = storage_type(fc1_spec.shape, wtype)
        fc1 = decode(encode(init_tensor(fc1_spec, seed), fc1_q), fc1_q)  # as stored
        base = init_tensor(spec, seed)
        taps = rng_for(seed, f"calibration-taps-{il}").standard_normal((n_calib, cfg.n_embd), dtype=np.float32)
        c = row_offsets(fc1, base, taps, planted[il])
        base += c[:, None].astype(np.float32)
        return encode(base, qtype)

    plans = [TensorPlan(s.name, s.shape, storage_type(s.shape, wtype), lambda s=s: produce(s)) for s in specs]
    if act_freq and planted is not None:
        plans += _act_freq_plans(planted)
    write_gguf(path, cfg.variant.arch, kv, vocab.fields, plans, progress=progress)
    if planted_out and planted is not None:
        np.save(planted_out, planted)
    return planted

