#!/usr/bin/env python3
"""Reference forward pass for libpowerinfer's model files, in plain numpy.

Read it top to bottom and follow one token through a model:

    token -> embedding -> for each layer: attention, predictor, FFN -> final norm -> logits

Sections: 1. building blocks (norms, softmax, RoPE, activation rounding), 2. hyperparameters from metadata,
3. weights, 4. the model (one code path per block kind), 5. sparse trace, 6. greedy decoding, 7. loading a
GGUF file, 8. command line. docs/MODEL_FILES.md states the conventions this file implements.

Numerics: weights are dequantized to float32 by `gguf.quants.dequantize` (exactly the values the file
stores), then every computation runs in float64, so the reference is far more precise than the engine
it checks. Two optional roundings imitate what the engine does on purpose:
  kv_dtype="f16"   K (after RoPE) and V are rounded to float16 when they enter the KV cache;
  act_quant="q8_0" an activation vector that is contracted with a Q8_0/Q4_0 weight along the weight's block
                   axis is first rounded to Q8_0 blocks of 32 (see `round_q8_0`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field

if __name__ == "__main__":  # small matrices: OpenBLAS threads only fight over the cores
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

# ------------------------------------------------------------------------------------------------------------
# 1. Building blocks
# ------------------------------------------------------------------------------------------------------------


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) * w, over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layernorm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) * w + b, over the last axis (biased variance, as in PyTorch)."""
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; -inf entries get probability 0."""
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def rope(x: np.ndarray, positions: np.ndarray, mode: str, base: float) -> np.ndarray:
    """Rotary position embedding of x (n_tokens, n_heads, head_dim) at the given absolute positions.

    Pair i (i = 0 .. head_dim/2 - 1) is rotated by the angle pos * base^(-2i/head_dim):
      mode "normal" (llama.cpp LLaMA): pairs are adjacent elements (x[2i], x[2i+1]);
      mode "neox"   (Falcon, GPT-NeoX): pairs are the two halves     (x[i],  x[i + head_dim/2]).
    """
    hd = x.shape[-1]
    i = np.arange(hd // 2)
    theta = positions[:, None].astype(np.float64) * base ** (-2.0 * i / hd)  # (n_tokens, hd/2)
    cos = np.cos(theta)[:, None, :]
    sin = np.sin(theta)[:, None, :]
    if mode == "normal":
        a, b = x[..., 0::2], x[..., 1::2]
    elif mode == "neox":
        a, b = x[..., : hd // 2], x[..., hd // 2 :]
    else:
        raise ValueError(f"unknown RoPE mode {mode!r}")
    ra = a * cos - b * sin
    rb = a * sin + b * cos
    out = np.empty_like(x)
    if mode == "normal":
        out[..., 0::2], out[..., 1::2] = ra, rb
    else:
        out[..., : hd // 2], out[..., hd // 2 :] = ra, rb
    return out


def round_q8_0(x: np.ndarray) -> np.ndarray:
    """Rounds activation rows to Q8_0 blocks of 32, the way the engine quantizes the vector side of a Q8_0/Q4_0
    dot product (backends/cpu/q8_activation.h): per block, in float32, d = max|x| / 127, id = 1/d (0 when d = 0),
    q = round-half-to-even(x * id); d is stored as float16 and the dot sees q * f16(d). (ggml's SIMD code rounds
    halves to even too; its scalar `quantize_row_q8_0_ref` rounds them away from zero.)"""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    blocks = x32.reshape(-1, 32)
    d = (np.abs(blocks).max(axis=1, keepdims=True) / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1.0) / np.where(d != 0, d, np.float32(1.0)), np.float32(0.0))
    q = np.round(blocks * inv.astype(np.float32))  # numpy rounds halves to even
    d16 = d.astype(np.float16).astype(np.float64)
    return (q.astype(np.float64) * d16).reshape(x32.shape)


# ------------------------------------------------------------------------------------------------------------
# 2. Hyperparameters, from the file's metadata (keys as in docs/MODEL_FILES.md)
# ------------------------------------------------------------------------------------------------------------

# How each architecture normalizes, rotates and arranges its blocks.
ARCHS = {
    #          norm      rope      block
    "llama":  ("rms",   "normal", "sequential"),
    "bamboo": ("rms",   "normal", "sequential"),
    "falcon": ("layer", "neox",   "parallel"),
    "opt":    ("layer", None,     "sequential"),
}


@dataclass
class HParams:
    arch: str
    n_vocab: int
    n_embd: int
    n_layer: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_ctx_train: int
    norm_eps: float
    rope_base: float
    activation: str           # "silu" | "reglu" | "drelu" | "relu"
    sparse_threshold: float   # default threshold of the sparse path

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def norm(self) -> str:
        return ARCHS[self.arch][0]

    @property
    def rope_mode(self) -> str | None:
        return ARCHS[self.arch][1]

    @property
    def block(self) -> str:
        return ARCHS[self.arch][2]


def hparams_from_metadata(meta: dict, tensor_names: set[str], n_vocab: int) -> HParams:
    arch = meta["general.architecture"]
    if arch not in ARCHS:
        raise ValueError(f"unsupported architecture {arch!r}")

    def key(k: str, default=None):
        v = meta.get(f"{arch}.{k}", default)
        if v is None:
            raise ValueError(f"missing metadata key {arch}.{k}")
        return v

    has_predictors = "blk.0.fc1.weight" in tensor_names
    # Our files say which activation they use; for a foreign llama file, predictors imply ReLU (DESIGN.md 5).
    default_act = {"llama": "reglu" if has_predictors else "silu", "bamboo": "drelu"}.get(arch, "relu")
    eps_key = "attention.layer_norm_rms_epsilon" if ARCHS[arch][0] == "rms" else "attention.layer_norm_epsilon"
    n_head = int(key("attention.head_count"))
    n_embd = int(key("embedding_length"))
    rope_dims = meta.get(f"{arch}.rope.dimension_count", n_embd // n_head)
    if ARCHS[arch][1] is not None and int(rope_dims) != n_embd // n_head:
        raise ValueError(f"{arch}.rope.dimension_count {rope_dims} != head_dim: partial RoPE is not supported")
    return HParams(
        arch=arch,
        n_vocab=n_vocab,
        n_embd=n_embd,
        n_layer=int(key("block_count")),
        n_ff=int(key("feed_forward_length")),
        n_head=n_head,
        n_head_kv=int(key("attention.head_count_kv", n_head)),
        n_ctx_train=int(key("context_length")),
        norm_eps=float(key(eps_key)),
        rope_base=float(key("rope.freq_base", 10000.0)),
        activation=str(meta.get("powerinfer.ffn_activation", default_act)),
        sparse_threshold=float(meta.get("powerinfer.sparse_threshold", 0.0)),
    )


# ------------------------------------------------------------------------------------------------------------
# 3. Weights
# ------------------------------------------------------------------------------------------------------------

QUANTIZED = ("Q8_0", "Q4_0")


@dataclass
class Linear:
    """y = W x (+ b) for a row of x per token. W is (n_out, n_in); qtype is how the file stores W."""
    w: np.ndarray
    b: np.ndarray | None
    qtype: str

    def __call__(self, x: np.ndarray, act_quant: str | None) -> np.ndarray:
        if act_quant == "q8_0" and self.qtype in QUANTIZED:
            x = round_q8_0(x)
        y = x @ self.w.T
        return y if self.b is None else y + self.b


@dataclass
class Norm:
    w: np.ndarray
    b: np.ndarray | None  # LayerNorm only


@dataclass
class Layer:
    attn_norm: Norm
    attn_norm_2: Norm | None          # falcon-40B: a second LayerNorm feeding the FFN
    ffn_norm: Norm | None             # sequential blocks only
    wq: Linear | None
    wk: Linear | None
    wv: Linear | None
    wqkv: Linear | None               # falcon: fused [q heads; k heads; v heads]
    wo: Linear
    gate: Linear | None               # gated activations only
    up: Linear
    down: Linear | None               # (n_embd, n_ff), used as down . a
    down_t: np.ndarray | None         # (n_ff, n_embd), used as sum_i a_i * down_t[i] (PowerInfer layout)
    fc1: Linear | None                # predictor (pred_width, n_embd)
    fc2: Linear | None                # predictor (n_ff, pred_width)


class Weights:
    """Turns {tensor name: (float32 array, type name)} into per-layer structures, checking shapes."""

    def __init__(self, hp: HParams, tensors: dict[str, tuple[np.ndarray, str]]):
        self.hp, self._t = hp, tensors
        self.token_embd = self._array("token_embd.weight", (hp.n_vocab, hp.n_embd))
        self.token_embd_qtype = tensors["token_embd.weight"][1]
        self.position_embd = None
        if hp.arch == "opt":  # learned positions, offset by 2 as in OPT
            self.position_embd = self._array("position_embd.weight", (hp.n_ctx_train + 2, hp.n_embd))
        self.output_norm = self._norm("output_norm", hp.n_embd)
        if "output.weight" in tensors:
            self.output = self._linear("output", (hp.n_vocab, hp.n_embd))
        else:  # tied head (OPT): logits = token_embd . x
            self.output = Linear(self.token_embd, None, self.token_embd_qtype)
        self.layers = [self._layer(i) for i in range(hp.n_layer)]

    def _array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in self._t:
            raise ValueError(f"missing tensor {name}")
        a = self._t[name][0]
        if a.shape != shape:
            raise ValueError(f"tensor {name} has shape {a.shape}, expected {shape}")
        return a.astype(np.float64)

    def _maybe(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        return self._array(name, shape) if name in self._t else None

    def _linear(self, name: str, shape: tuple[int, int]) -> Linear:
        return Linear(self._array(name + ".weight", shape), self._maybe(name + ".bias", shape[:1]),
                      self._t[name + ".weight"][1])

    def _maybe_linear(self, name: str, shape: tuple[int, int]) -> Linear | None:
        return self._linear(name, shape) if name + ".weight" in self._t else None

    def _norm(self, name: str, n: int) -> Norm:
        return Norm(self._array(name + ".weight", (n,)), self._maybe(name + ".bias", (n,)))

    def _layer(self, i: int) -> Layer:
        hp, p = self.hp, f"blk.{i}."
        d, hd = hp.n_embd, hp.head_dim
        nq, nkv = hp.n_head * hd, hp.n_head_kv * hd
        fused = p + "attn_qkv.weight" in self._t
        pred = None
        if p + "fc1.weight" in self._t:
            pred = self._t[p + "fc1.weight"][0].shape[0]
        layer = Layer(
            attn_norm=self._norm(p + "attn_norm", d),
            attn_norm_2=self._norm(p + "attn_norm_2", d) if p + "attn_norm_2.weight" in self._t else None,
            ffn_norm=self._norm(p + "ffn_norm", d) if hp.block == "sequential" else None,
            wq=None if fused else self._linear(p + "attn_q", (nq, d)),
            wk=None if fused else self._linear(p + "attn_k", (nkv, d)),
            wv=None if fused else self._linear(p + "attn_v", (nkv, d)),
            wqkv=self._linear(p + "attn_qkv", (nq + 2 * nkv, d)) if fused else None,
            wo=self._linear(p + "attn_output", (d, nq)),
            gate=self._maybe_linear(p + "ffn_gate", (hp.n_ff, d)),
            up=self._linear(p + "ffn_up", (hp.n_ff, d)),
            down=self._maybe_linear(p + "ffn_down", (d, hp.n_ff)),
            down_t=self._maybe(p + "ffn_down_t.weight", (hp.n_ff, d)),
            fc1=self._linear(p + "fc1", (pred, d)) if pred else None,
            fc2=self._linear(p + "fc2", (hp.n_ff, pred)) if pred else None,
        )
        if (layer.down is None) == (layer.down_t is None):
            raise ValueError(f"layer {i}: need exactly one of ffn_down and ffn_down_t")
        if (layer.gate is not None) != (hp.activation in ("silu", "reglu", "drelu")):
            raise ValueError(f"layer {i}: ffn_gate presence does not match activation {hp.activation!r}")
        return layer


# ------------------------------------------------------------------------------------------------------------
# 4. The model
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Options:
    sparse: bool = False
    threshold: float = 0.0
    kv_dtype: str = "f32"
    act_quant: str | None = None


class Model:
    """A model plus its KV cache. `forward` appends tokens at `start_pos` (dropping anything cached after it)."""

    def __init__(self, meta: dict, tensors: dict[str, tuple[np.ndarray, str]]):
        n_vocab = tensors["token_embd.weight"][0].shape[0]
        self.meta = meta
        self.hp = hparams_from_metadata(meta, set(tensors), n_vocab)
        self.w = Weights(self.hp, tensors)
        self.has_predictors = all(layer.fc1 is not None for layer in self.w.layers)
        self.reset()

    def reset(self) -> None:
        """Empties the KV cache."""
        hp = self.hp
        self.cache_k = [np.zeros((0, hp.n_head_kv, hp.head_dim)) for _ in range(hp.n_layer)]
        self.cache_v = [np.zeros((0, hp.n_head_kv, hp.head_dim)) for _ in range(hp.n_layer)]

    @property
    def n_past(self) -> int:
        return self.cache_k[0].shape[0] if self.hp.n_layer else 0

    def forward(self, tokens, start_pos: int = 0, sparse: bool = False, threshold: float | None = None,
                kv_dtype: str = "f32", act_quant: str | None = None, trace: Trace | None = None) -> np.ndarray:
        """Runs tokens at positions start_pos.. and returns their logits (n_tokens, n_vocab).

        sparse: evaluate the predictors and leave out inactive neurons (threshold None = the file's
        powerinfer.sparse_threshold; -inf = every neuron active, identical to dense). trace: a Trace that
        collects every layer's predictor scores."""
        opts = self._options(sparse, threshold, kv_dtype, act_quant)
        x = self._run(tokens, start_pos, opts, trace, stop_at_tap=None)
        return self._logits(x, opts)

    def taps(self, tokens, layer: int, sparse: bool = True, threshold: float | None = None) -> np.ndarray:
        """The predictor input of `layer` (n_tokens, n_embd) for a fresh sequence: used to calibrate predictors.
        Runs only the layers below `layer`; the KV cache is empty before and after."""
        self.reset()
        tap = self._run(tokens, 0, self._options(sparse, threshold, "f32", None), None, stop_at_tap=layer)
        self.reset()
        return tap

    def _options(self, sparse, threshold, kv_dtype, act_quant) -> Options:
        if sparse and not self.has_predictors:
            raise ValueError("sparse=True needs a model with predictors (fc1/fc2 in every layer)")
        if kv_dtype not in ("f32", "f16"):
            raise ValueError(f"kv_dtype must be 'f32' or 'f16', not {kv_dtype!r}")
        if act_quant not in (None, "q8_0"):
            raise ValueError(f"act_quant must be None or 'q8_0', not {act_quant!r}")
        thr = self.hp.sparse_threshold if threshold is None else float(threshold)
        return Options(sparse, thr, kv_dtype, act_quant)

    def _run(self, tokens, start_pos: int, opts: Options, trace, stop_at_tap):
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if len(tokens) == 0:
            raise ValueError("no tokens")
        if tokens.min() < 0 or tokens.max() >= self.hp.n_vocab:
            raise ValueError(f"token id out of range [0, {self.hp.n_vocab})")
        if not 0 <= start_pos <= self.n_past:
            raise ValueError(f"start_pos {start_pos} is beyond the {self.n_past} cached positions")
        positions = np.arange(start_pos, start_pos + len(tokens))

        x = self._embed(tokens, positions)
        for il in range(self.hp.n_layer):
            if self.hp.block == "sequential":
                x = self._layer_sequential(il, x, positions, opts, trace, stop_at_tap)
            else:
                x = self._layer_parallel(il, x, positions, opts, trace, stop_at_tap)
            if stop_at_tap == il:
                return x  # the layer functions return the tap when asked to stop
        return x

    # --- embedding and output head -------------------------------------------------------------------------

    def _embed(self, tokens: np.ndarray, positions: np.ndarray) -> np.ndarray:
        x = self.w.token_embd[tokens]
        if self.w.position_embd is not None:  # OPT: learned positions, row = position + 2
            if positions[-1] >= self.hp.n_ctx_train:
                raise ValueError(f"position {positions[-1]} beyond the learned positions ({self.hp.n_ctx_train})")
            x = x + self.w.position_embd[positions + 2]
        return x

    def _logits(self, x: np.ndarray, opts: Options) -> np.ndarray:
        return self.w.output(self._norm(x, self.w.output_norm), opts.act_quant)

    def _norm(self, x: np.ndarray, n: Norm) -> np.ndarray:
        if self.hp.norm == "rms":
            return rmsnorm(x, n.w, self.hp.norm_eps)
        return layernorm(x, n.w, n.b, self.hp.norm_eps)

    # --- the two block kinds -------------------------------------------------------------------------------

    def _layer_sequential(self, il, x, positions, opts, trace, stop_at_tap):
        """llama, bamboo, opt: x += attn(norm(x)); then x += ffn(norm(x)). The predictor reads the residual
        stream between the two (the FFN input before its norm)."""
        layer = self.w.layers[il]
        x = x + self._attention(il, self._norm(x, layer.attn_norm), positions, opts)
        if stop_at_tap == il:
            return x
        mask = self._predict(il, x, opts, trace)
        return x + self._ffn(il, self._norm(x, layer.ffn_norm), mask, opts)

    def _layer_parallel(self, il, x, positions, opts, trace, stop_at_tap):
        """falcon: x += attn(ln(x)) + ffn(ln(x)) from the same input (falcon-40B: a second LayerNorm for the
        FFN). The predictor reads the layer input."""
        layer = self.w.layers[il]
        if stop_at_tap == il:
            return x
        mask = self._predict(il, x, opts, trace)
        xa = self._norm(x, layer.attn_norm)
        xf = xa if layer.attn_norm_2 is None else self._norm(x, layer.attn_norm_2)
        return x + self._attention(il, xa, positions, opts) + self._ffn(il, xf, mask, opts)

    # --- attention -----------------------------------------------------------------------------------------

    def _attention(self, il, xn, positions, opts):
        """Causal multi-head attention with grouped KV heads: query head h reads KV head h // (n_head/n_head_kv)."""
        hp, layer, aq = self.hp, self.w.layers[il], opts.act_quant
        n, hd = xn.shape[0], hp.head_dim
        if layer.wqkv is not None:  # falcon: one matmul, rows are [q heads; k heads; v heads]
            qkv = layer.wqkv(xn, aq)
            q, k, v = np.split(qkv, [hp.n_head * hd, (hp.n_head + hp.n_head_kv) * hd], axis=1)
        else:
            q, k, v = layer.wq(xn, aq), layer.wk(xn, aq), layer.wv(xn, aq)
        q = q.reshape(n, hp.n_head, hd)
        k = k.reshape(n, hp.n_head_kv, hd)
        v = v.reshape(n, hp.n_head_kv, hd)
        if hp.rope_mode is not None:
            q = rope(q, positions, hp.rope_mode, hp.rope_base)
            k = rope(k, positions, hp.rope_mode, hp.rope_base)
        if opts.kv_dtype == "f16":  # what an F16 KV cache stores
            k = k.astype(np.float16).astype(np.float64)
            v = v.astype(np.float16).astype(np.float64)

        start = positions[0]
        self.cache_k[il] = np.concatenate([self.cache_k[il][:start], k])
        self.cache_v[il] = np.concatenate([self.cache_v[il][:start], v])
        keys, values = self.cache_k[il], self.cache_v[il]

        future = np.arange(keys.shape[0])[None, :] > positions[:, None]  # (n, n_keys): key after query
        group = hp.n_head // hp.n_head_kv
        out = np.empty((n, hp.n_head, hd))
        for h in range(hp.n_head):
            kv = h // group
            scores = q[:, h, :] @ keys[:, kv, :].T / math.sqrt(hd)
            scores[future] = -np.inf
            out[:, h, :] = softmax(scores) @ values[:, kv, :]
        return layer.wo(out.reshape(n, hp.n_head * hd), aq)

    # --- predictor and FFN ---------------------------------------------------------------------------------

    def _predict(self, il, tap, opts, trace):
        """Active mask (n_tokens, n_ff): neuron i is active iff fc2 . relu(fc1 . tap) >= threshold; None = dense."""
        if not opts.sparse:
            return None
        layer = self.w.layers[il]
        scores = layer.fc2(relu(layer.fc1(tap, opts.act_quant)), opts.act_quant)
        if trace is not None:
            trace.add(il, scores, opts.threshold)
        return scores >= opts.threshold

    def _ffn(self, il, xn, mask, opts):
        """The FFN; with a mask, inactive neurons contribute nothing (their activation is zero)."""
        hp, layer, aq = self.hp, self.w.layers[il], opts.act_quant
        if hp.activation == "silu":
            a = silu(layer.gate(xn, aq)) * layer.up(xn, aq)
        elif hp.activation == "reglu":
            a = relu(layer.gate(xn, aq)) * layer.up(xn, aq)
        elif hp.activation == "drelu":
            a = relu(layer.gate(xn, aq)) * relu(layer.up(xn, aq))
        elif hp.activation == "relu":
            a = relu(layer.up(xn, aq))
        else:
            raise ValueError(f"unknown activation {hp.activation!r}")
        if mask is not None:
            a = np.where(mask, a, 0.0)
        if layer.down_t is not None:
            # PowerInfer layout: the output is a sum of down_t rows weighted by the activations. The activations
            # are scalars here, not a vector dotted along down_t's block axis, so act_quant does not round them.
            return a @ layer.down_t
        return layer.down(a, aq)


# ------------------------------------------------------------------------------------------------------------
# 5. Sparse trace: predictor scores, active masks, margins
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Trace:
    """Collects predictor scores per layer over one or more forward calls (rows = tokens, in order)."""
    scores: dict[int, list[np.ndarray]] = field(default_factory=dict)
    threshold: float | None = None

    def add(self, layer: int, scores: np.ndarray, threshold: float) -> None:
        self.scores.setdefault(layer, []).append(scores)
        self.threshold = threshold

    def layer_scores(self, layer: int) -> np.ndarray:
        return np.concatenate(self.scores[layer])

    def layer_masks(self, layer: int) -> np.ndarray:
        return self.layer_scores(layer) >= self.threshold

    def active_fraction(self) -> list[float]:
        return [float(self.layer_masks(layer).mean()) for layer in sorted(self.scores)]

    def min_margin(self) -> float:
        """min |score - threshold| over every neuron, token and layer seen: a rounding error smaller than this
        cannot flip an active/inactive decision."""
        if not self.scores or not math.isfinite(self.threshold):
            return math.inf
        return float(min(np.abs(self.layer_scores(layer) - self.threshold).min() for layer in self.scores))


# ------------------------------------------------------------------------------------------------------------
# 6. Greedy decoding
# ------------------------------------------------------------------------------------------------------------


def greedy(model: Model, prompt_tokens, n: int, **opts) -> list[int]:
    """Feeds the prompt, then n times appends the argmax token (lowest id on ties). Returns the n new tokens.
    opts are forward's keyword arguments (sparse, threshold, kv_dtype, act_quant, trace)."""
    model.reset()
    prompt = list(prompt_tokens)
    logits = model.forward(prompt, 0, **opts)
    out: list[int] = []
    for _ in range(n):
        tok = int(np.argmax(logits[-1]))
        out.append(tok)
        if len(out) == n:
            break
        logits = model.forward([tok], len(prompt) + len(out) - 1, **opts)
    return out


def safe_prompt(model: Model, n_tokens: int, min_margin: float, n_generate: int = 0, seed: int = 0,
                max_tries: int = 1000, **opts) -> list[int]:
    """A random prompt of n_tokens whose sparse run (the prompt, then n_generate greedy tokens, each fed back)
    keeps every predictor score at least min_margin away from the threshold, so an engine with small rounding
    errors must make the same active/inactive decisions. opts as for forward (sparse is implied)."""
    rng = np.random.default_rng(seed)
    opts["sparse"] = True
    for _ in range(max_tries):
        prompt = [int(t) for t in rng.integers(0, model.hp.n_vocab, size=n_tokens)]
        trace = Trace()
        greedy(model, prompt, n_generate + 1, trace=trace, **opts)  # +1: the last generated token is fed too
        if trace.min_margin() >= min_margin:
            return prompt
    raise RuntimeError(f"no prompt with margin {min_margin} in {max_tries} tries")


# ------------------------------------------------------------------------------------------------------------
# 7. Loading a GGUF file
# ------------------------------------------------------------------------------------------------------------


def read_metadata(reader) -> dict:
    """Scalar and string metadata (arrays, i.e. the tokenizer, are skipped: the forward pass needs none)."""
    from gguf import GGUFValueType

    meta = {}
    for k, f in reader.fields.items():
        if k.startswith("GGUF.") or not f.types or f.types[0] == GGUFValueType.ARRAY:
            continue
        meta[k] = f.contents()
    return meta


def read_tensors(reader) -> dict[str, tuple[np.ndarray, str]]:
    """{name: (float32 array in numpy (rows, cols) order, ggml type name)}."""
    from gguf.quants import dequantize

    out = {}
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape))  # GGUF ne[] is (cols, rows)
        data = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
        out[t.name] = (data, t.tensor_type.name)
    return out


def load(path: str) -> Model:
    from gguf import GGUFReader

    reader = GGUFReader(path)
    return Model(read_metadata(reader), read_tensors(reader))


# ------------------------------------------------------------------------------------------------------------
# 8. Command line
# ------------------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="numpy reference forward pass; prints JSON")
    ap.add_argument("model")
    ap.add_argument("--tokens", help="comma-separated token ids of the prompt")
    ap.add_argument("--sparse", action="store_true")
    ap.add_argument("--threshold", type=float, default=None, help="predictor threshold (-inf: all active)")
    ap.add_argument("--kv", choices=("f32", "f16"), default="f32")
    ap.add_argument("--act-quant", choices=("q8_0",), default=None)
    ap.add_argument("--greedy", type=int, default=0, metavar="N", help="also generate N tokens greedily")
    ap.add_argument("--out", help="write the prompt's logits (n_tokens, n_vocab) float64 to this .npy")
    ap.add_argument("--safe-prompt", type=int, metavar="N",
                    help="instead of --tokens: find a random N-token prompt whose sparse run (with --greedy) "
                         "keeps every score --min-margin away from the threshold")
    ap.add_argument("--min-margin", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0, help="for --safe-prompt")
    args = ap.parse_args(argv)
    if (args.tokens is None) == (args.safe_prompt is None):
        ap.error("give exactly one of --tokens and --safe-prompt")

    model = load(args.model)
    opts = dict(threshold=args.threshold, kv_dtype=args.kv, act_quant=args.act_quant)
    if args.safe_prompt is not None:
        args.sparse = True
        tokens = safe_prompt(model, args.safe_prompt, args.min_margin, args.greedy, args.seed, **opts)
    else:
        tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    opts["sparse"] = args.sparse
    trace = Trace() if args.sparse else None
    model.reset()
    logits = model.forward(tokens, 0, trace=trace, **opts)
    if args.out:
        np.save(args.out, logits)
    last = logits[-1]
    top = np.argsort(-last, kind="stable")[:5]
    result = {
        "model": args.model,
        "arch": model.hp.arch,
        "tokens": tokens,
        "last_logits": {
            "argmax": int(np.argmax(last)),
            "max": float(last.max()), "min": float(last.min()),
            "mean": float(last.mean()), "std": float(last.std()),
            "top5": [[int(i), float(last[i])] for i in top],
        },
    }
    if args.greedy:
        if trace is not None:
            trace = Trace()  # the greedy run repeats the prompt: report its own trace
        result["greedy"] = greedy(model, tokens, args.greedy, trace=trace, **opts)
    if trace is not None:
        result["sparse"] = {"threshold": trace.threshold, "min_margin": trace.min_margin(),
                            "active_fraction": trace.active_fraction()}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
