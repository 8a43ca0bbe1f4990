"""Model variants: which architecture, activation and tensor layout each one has, its tensors and metadata.

Shapes are numpy (rows, cols) as passed to the GGUF writer; a matrix W of shape (n_out, n_in) is used as W . x.
docs/MODEL_FILES.md is the prose version of this file.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from gguf import GGUFValueType


@dataclass(frozen=True)
class Variant:
    name: str
    arch: str               # general.architecture
    activation: str         # powerinfer.ffn_activation: silu | reglu | drelu | relu
    down_layout: str        # "ffn_down" (n_embd, n_ff) or "ffn_down_t" (n_ff, n_embd), PowerInfer's layout
    predictors: bool        # fc1/fc2 per layer
    vocab: str              # which real vocabulary: "llama" or "falcon"
    block: str = "sequential"   # "sequential" (pre-norm attn then FFN) or "parallel" (falcon)
    two_norms: bool = False     # falcon-40B: attn_norm for attention, attn_norm_2 for the FFN
    opt_style: bool = False     # OPT: biases everywhere, learned positions, tied output head, no RoPE

    @property
    def gated(self) -> bool:
        return self.activation in ("silu", "reglu", "drelu")

    @property
    def layernorm(self) -> bool:
        return self.arch in ("falcon", "opt")

    @property
    def rope(self) -> bool:
        return not self.opt_style


VARIANTS = {v.name: v for v in (
    Variant("llama", "llama", "silu", "ffn_down", predictors=False, vocab="llama"),
    Variant("relu-llama", "llama", "reglu", "ffn_down_t", predictors=True, vocab="llama"),
    Variant("prosparse", "llama", "reglu", "ffn_down", predictors=True, vocab="llama"),
    Variant("bamboo", "bamboo", "drelu", "ffn_down_t", predictors=True, vocab="llama"),
    Variant("falcon", "falcon", "relu", "ffn_down", predictors=True, vocab="falcon", block="parallel"),
    Variant("falcon40b", "falcon", "relu", "ffn_down", predictors=True, vocab="falcon", block="parallel",
            two_norms=True),
    Variant("opt", "opt", "relu", "ffn_down", predictors=True, vocab="llama", opt_style=True),
)}


@dataclass(frozen=True)
class Config:
    variant: Variant
    n_vocab: int
    n_embd: int
    n_layer: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_ctx_train: int
    pred_widths: tuple[int, ...] = ()   # per layer; empty for dense
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    name: str = ""

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def with_(self, **kw) -> "Config":
        return replace(self, **kw)

    def check(self) -> None:
        v = self.variant
        if self.n_embd % self.n_head or self.n_head % self.n_head_kv:
            raise ValueError("n_embd must divide by n_head and n_head by n_head_kv")
        if self.head_dim % 2:
            raise ValueError("head_dim must be even (RoPE rotates pairs)")
        if v.predictors and len(self.pred_widths) != self.n_layer:
            raise ValueError(f"{v.name} needs one predictor width per layer")
        if not v.predictors and self.pred_widths:
            raise ValueError(f"{v.name} has no predictors")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    role: str   # embedding | matrix | norm | bias | fc1 | fc2

    @property
    def is_matrix(self) -> bool:
        return len(self.shape) == 2


def tensor_specs(cfg: Config) -> list[TensorSpec]:
    """Every tensor of the model, in file order."""
    cfg.check()
    v, d, ff, hd = cfg.variant, cfg.n_embd, cfg.n_ff, cfg.head_dim
    nq, nkv = cfg.n_head * hd, cfg.n_head_kv * hd
    specs = [TensorSpec("token_embd.weight", (cfg.n_vocab, d), "embedding")]
    if v.opt_style:
        specs.append(TensorSpec("position_embd.weight", (cfg.n_ctx_train + 2, d), "embedding"))

    def linear(name, n_out, n_in, bias=v.opt_style):
        specs.append(TensorSpec(name + ".weight", (n_out, n_in), "matrix"))
        if bias:
            specs.append(TensorSpec(name + ".bias", (n_out,), "bias"))

    def norm(name):
        specs.append(TensorSpec(name + ".weight", (d,), "norm"))
        if v.layernorm:
            specs.append(TensorSpec(name + ".bias", (d,), "bias"))

    for i in range(cfg.n_layer):
        p = f"blk.{i}."
        norm(p + "attn_norm")
        if v.two_norms:
            norm(p + "attn_norm_2")
        if v.block == "parallel":
            linear(p + "attn_qkv", nq + 2 * nkv, d)  # rows: [all q heads; all k heads; all v heads]
        else:
            linear(p + "attn_q", nq, d)
            linear(p + "attn_k", nkv, d)
            linear(p + "attn_v", nkv, d)
        linear(p + "attn_output", d, nq)
        if v.block == "sequential":
            norm(p + "ffn_norm")
        if v.gated:
            linear(p + "ffn_gate", ff, d)
        linear(p + "ffn_up", ff, d)
        if v.down_layout == "ffn_down_t":
            specs.append(TensorSpec(p + "ffn_down_t.weight", (ff, d), "matrix"))
        else:
            linear(p + "ffn_down", d, ff)
        if v.predictors:
            w = cfg.pred_widths[i]
            specs.append(TensorSpec(p + "fc1.weight", (w, d), "fc1"))
            specs.append(TensorSpec(p + "fc2.weight", (ff, w), "fc2"))
    norm("output_norm")
    if not v.opt_style:  # OPT ties the output head to token_embd
        specs.append(TensorSpec("output.weight", (cfg.n_vocab, d), "matrix"))
    return specs


# llama.cpp's general.file_type numbers (LLAMA_FTYPE_*), so other tools label our files correctly.
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "bf16": 32}


def metadata(cfg: Config, wtype: str, name: str) -> list[tuple[str, object, GGUFValueType]]:
    """Model metadata (the tokenizer section is added separately), in file order."""
    v, a = cfg.variant, cfg.variant.arch
    u32, f32, s = GGUFValueType.UINT32, GGUFValueType.FLOAT32, GGUFValueType.STRING
    eps_key = "attention.layer_norm_epsilon" if v.layernorm else "attention.layer_norm_rms_epsilon"
    kv = [
        ("general.name", name, s),
        ("general.file_type", FILE_TYPES[wtype], u32),
        (f"{a}.context_length", cfg.n_ctx_train, u32),
        (f"{a}.embedding_length", cfg.n_embd, u32),
        (f"{a}.block_count", cfg.n_layer, u32),
        (f"{a}.feed_forward_length", cfg.n_ff, u32),
        (f"{a}.attention.head_count", cfg.n_head, u32),
        (f"{a}.attention.head_count_kv", cfg.n_head_kv, u32),
        (f"{a}.{eps_key}", cfg.norm_eps, f32),
    ]
    if v.rope:  # OPT has learned positions instead
        kv += [(f"{a}.rope.freq_base", cfg.rope_base, f32), (f"{a}.rope.dimension_count", cfg.head_dim, u32)]
    if wtype in ("q8_0", "q4_0"):
        kv.append(("general.quantization_version", 2, u32))
    kv.append(("powerinfer.ffn_activation", v.activation, s))
    if v.predictors:
        kv.append(("powerinfer.sparse_threshold", 0.0, f32))
    return kv
