"""The written files: metadata, tensor names/shapes/types, quantization error, vocabulary, determinism."""
import hashlib
import os

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType

import reference as R
from pimodels import models, presets
from pimodels.vocab import Field, Vocab, read_vocab, truncate

VOCAB_DIR = os.path.join(presets.REPO, "tests", "data", "vocab")
U32, F32, STR = GGUFValueType.UINT32, GGUFValueType.FLOAT32, GGUFValueType.STRING

# Written out by hand from docs/MODEL_FILES.md: per-layer tensors (numpy shapes with d=64, ff=256, hd=16, w=pred
# width) and whether the variant has predictors.
D, FF, HD = 64, 256, 16
EXPECTED = {
    #             layers kv  per-layer names -> shape
    "llama": (2, 2, {"attn_norm.weight": (D,), "attn_q.weight": (64, D), "attn_k.weight": (32, D),
                     "attn_v.weight": (32, D), "attn_output.weight": (D, 64), "ffn_norm.weight": (D,),
                     "ffn_gate.weight": (FF, D), "ffn_up.weight": (FF, D), "ffn_down.weight": (D, FF)}),
    "relu-llama": (3, 2, {"attn_norm.weight": (D,), "attn_q.weight": (64, D), "attn_k.weight": (32, D),
                          "attn_v.weight": (32, D), "attn_output.weight": (D, 64), "ffn_norm.weight": (D,),
                          "ffn_gate.weight": (FF, D), "ffn_up.weight": (FF, D), "ffn_down_t.weight": (FF, D),
                          "fc1.weight": ("w", D), "fc2.weight": (FF, "w")}),
    "prosparse": (3, 2, {"attn_norm.weight": (D,), "attn_q.weight": (64, D), "attn_k.weight": (32, D),
                         "attn_v.weight": (32, D), "attn_output.weight": (D, 64), "ffn_norm.weight": (D,),
                         "ffn_gate.weight": (FF, D), "ffn_up.weight": (FF, D), "ffn_down.weight": (D, FF),
                         "fc1.weight": ("w", D), "fc2.weight": (FF, "w")}),
    "bamboo": (2, 2, {"attn_norm.weight": (D,), "attn_q.weight": (64, D), "attn_k.weight": (32, D),
                      "attn_v.weight": (32, D), "attn_output.weight": (D, 64), "ffn_norm.weight": (D,),
                      "ffn_gate.weight": (FF, D), "ffn_up.weight": (FF, D), "ffn_down_t.weight": (FF, D),
                      "fc1.weight": ("w", D), "fc2.weight": (FF, "w")}),
    "falcon": (2, 1, {"attn_norm.weight": (D,), "attn_norm.bias": (D,), "attn_qkv.weight": (64 + 2 * 16, D),
                      "attn_output.weight": (D, 64), "ffn_up.weight": (FF, D), "ffn_down.weight": (D, FF),
                      "fc1.weight": ("w", D), "fc2.weight": (FF, "w")}),
    "falcon40b": (3, 2, {"attn_norm.weight": (D,), "attn_norm.bias": (D,), "attn_norm_2.weight": (D,),
                         "attn_norm_2.bias": (D,), "attn_qkv.weight": (64 + 2 * 32, D),
                         "attn_output.weight": (D, 64), "ffn_up.weight": (FF, D), "ffn_down.weight": (D, FF),
                         "fc1.weight": ("w", D), "fc2.weight": (FF, "w")}),
    "opt": (2, 4, {"attn_norm.weight": (D,), "attn_norm.bias": (D,), "attn_q.weight": (64, D),
                   "attn_q.bias": (64,), "attn_k.weight": (64, D), "attn_k.bias": (64,), "attn_v.weight": (64, D),
                   "attn_v.bias": (64,), "attn_output.weight": (D, 64), "attn_output.bias": (D,),
                   "ffn_norm.weight": (D,), "ffn_norm.bias": (D,), "ffn_up.weight": (FF, D), "ffn_up.bias": (FF,),
                   "ffn_down.weight": (D, FF), "ffn_down.bias": (D,), "fc1.weight": ("w", D),
                   "fc2.weight": (FF, "w")}),
}
ARCH = {"llama": "llama", "relu-llama": "llama", "prosparse": "llama", "bamboo": "bamboo", "falcon": "falcon",
        "falcon40b": "falcon", "opt": "opt"}
ACT = {"llama": "silu", "relu-llama": "reglu", "prosparse": "reglu", "bamboo": "drelu", "falcon": "relu",
       "falcon40b": "relu", "opt": "relu"}
GGML_TYPE = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0", "q4_0": "Q4_0"}


def reader(models_dir, name):
    return GGUFReader(os.path.join(models_dir, name + ".gguf"))


def field(r, key):
    f = r.fields[key]
    return f.contents(), f.types[0]


@pytest.mark.parametrize("wtype", presets.MATRIX_TYPES)
@pytest.mark.parametrize("variant", list(EXPECTED))
def test_tensor_names_shapes_and_types(models_dir, variant, wtype):
    n_layer, n_kv, per_layer = EXPECTED[variant]
    r = reader(models_dir, f"{variant}-{wtype}")
    got = {t.name: (tuple(int(x) for x in reversed(t.shape)), t.tensor_type.name) for t in r.tensors}
    want = {"token_embd.weight": (1024, D), "output_norm.weight": (D,)}
    if variant in ("falcon", "falcon40b", "opt"):
        want["output_norm.bias"] = (D,)
    if variant == "opt":
        want["position_embd.weight"] = (128 + 2, D)
    else:
        want["output.weight"] = (1024, D)
    widths = (32, 64, 96) if variant == "prosparse" else (32, 32, 32)
    for il in range(n_layer):
        for name, shape in per_layer.items():
            want[f"blk.{il}.{name}"] = tuple(widths[il] if s == "w" else s for s in shape)
    assert {k: v[0] for k, v in got.items()} == want
    for name, (shape, tname) in got.items():
        assert tname == (GGML_TYPE[wtype] if len(shape) == 2 else "F32"), name
    assert field(r, "GGUF.version")[0] == 3


@pytest.mark.parametrize("variant", list(EXPECTED))
def test_metadata(models_dir, variant):
    n_layer, n_kv, _ = EXPECTED[variant]
    r = reader(models_dir, f"{variant}-q4_0")
    a = ARCH[variant]
    assert field(r, "general.architecture") == (a, STR)
    assert field(r, "general.name")[1] == STR
    expect = {"context_length": 128, "embedding_length": D, "block_count": n_layer, "feed_forward_length": FF,
              "attention.head_count": 4, "attention.head_count_kv": n_kv}
    if variant != "opt":
        expect["rope.dimension_count"] = HD
    for k, v in expect.items():
        assert field(r, f"{a}.{k}") == (v, U32), k
    eps = "attention.layer_norm_epsilon" if a in ("falcon", "opt") else "attention.layer_norm_rms_epsilon"
    other = "attention.layer_norm_rms_epsilon" if a in ("falcon", "opt") else "attention.layer_norm_epsilon"
    assert field(r, f"{a}.{eps}")[1] == F32 and f"{a}.{other}" not in r.fields
    if variant == "opt":
        assert not any(k.startswith("opt.rope") for k in r.fields)
    else:
        assert field(r, f"{a}.rope.freq_base") == (10000.0, F32)
    assert field(r, "powerinfer.ffn_activation") == (ACT[variant], STR)
    if variant == "llama":
        assert "powerinfer.sparse_threshold" not in r.fields
    else:
        assert field(r, "powerinfer.sparse_threshold") == (0.0, F32)
    assert field(r, "general.file_type") == (2, U32)  # llama.cpp's MOSTLY_Q4_0
    assert field(r, "general.quantization_version") == (2, U32)


def _blocks(a):
    return a.reshape(-1, 32)


@pytest.mark.parametrize("wtype", ["f16", "bf16", "q8_0", "q4_0"])
@pytest.mark.parametrize("variant", ["llama", "relu-llama", "falcon40b", "opt"])
def test_stored_weights_are_the_f32_weights_within_the_type_error(models_dir, variant, wtype):
    """Same seed, same weights: each type's file holds the F32 file's values up to that type's rounding.
    (fc2 is left out: its row means are planted per file, against that file's own rounded weights.)"""
    ref = R.read_tensors(reader(models_dir, f"{variant}-f32"))
    got = R.read_tensors(reader(models_dir, f"{variant}-{wtype}"))
    assert set(ref) == set(got)
    n = 0
    for name, (a, _) in ref.items():
        b = got[name][0]
        if name.endswith("fc2.weight"):
            continue
        if a.ndim == 1:
            np.testing.assert_array_equal(a, b)  # norms and biases stay F32
            continue
        n += 1
        if wtype == "f16":
            np.testing.assert_allclose(b, a, rtol=2.0 ** -11, atol=6e-8)
        elif wtype == "bf16":
            np.testing.assert_allclose(b, a, rtol=2.0 ** -8, atol=0)
        else:
            amax = np.max(np.abs(_blocks(a)), axis=1, keepdims=True)
            # Q8_0: d = amax/127, error <= d/2 plus the f16 rounding of d (<= 127 * d * 2^-11)
            # Q4_0: d = amax/8, error <= d (the largest positive value can clip at +7) plus f16 rounding of d
            d = amax / 127 if wtype == "q8_0" else amax / 8
            bound = d * (0.5 + 127 * 2.0 ** -11) if wtype == "q8_0" else d * (1 + 8 * 2.0 ** -11)
            err = np.abs(_blocks(b) - _blocks(a))
            assert np.all(err <= bound + 1e-12), name
            rel = np.sqrt(np.mean(err ** 2) / np.mean(a ** 2))
            assert rel < (0.01 if wtype == "q8_0" else 0.12), (name, rel)
            assert rel > (1e-4 if wtype == "q8_0" else 1e-2)  # really quantized
    assert n >= 8


def test_tiny_vocab_is_the_first_1024_tokens(models_dir):
    full = read_vocab(os.path.join(VOCAB_DIR, "ggml-vocab-llama.gguf"))
    r = reader(models_dir, "relu-llama-f16")
    assert r.fields["tokenizer.ggml.tokens"].contents() == full.get("tokenizer.ggml.tokens")[:1024]
    np.testing.assert_array_equal(r.fields["tokenizer.ggml.scores"].contents(),
                                  full.get("tokenizer.ggml.scores")[:1024])
    assert r.fields["tokenizer.ggml.token_type"].contents() == full.get("tokenizer.ggml.token_type")[:1024]
    assert field(r, "tokenizer.ggml.model") == ("llama", STR)
    assert [field(r, f"tokenizer.ggml.{k}_token_id")[0] for k in ("bos", "eos", "unknown")] == [1, 2, 0]
    assert r.fields["tokenizer.ggml.tokens"].types == [GGUFValueType.ARRAY, GGUFValueType.STRING]
    assert r.fields["tokenizer.ggml.scores"].types == [GGUFValueType.ARRAY, GGUFValueType.FLOAT32]
    assert r.fields["tokenizer.ggml.token_type"].types == [GGUFValueType.ARRAY, GGUFValueType.INT32]


def test_falcon_vocab_keeps_only_merges_inside_the_kept_tokens(models_dir):
    full = read_vocab(os.path.join(VOCAB_DIR, "ggml-vocab-falcon.gguf"))
    r = reader(models_dir, "falcon-f16")
    toks = r.fields["tokenizer.ggml.tokens"].contents()
    assert toks == full.get("tokenizer.ggml.tokens")[:1024]
    kept = set(toks)
    want = []
    for m in full.get("tokenizer.ggml.merges"):
        a, b = m.split(" ")
        if a in kept and b in kept and a + b in kept:
            want.append(m)
    merges = r.fields["tokenizer.ggml.merges"].contents()
    assert merges == want and 500 < len(merges) < len(full.get("tokenizer.ggml.merges"))
    assert field(r, "tokenizer.ggml.model") == ("gpt2", STR)
    assert field(r, "tokenizer.ggml.eos_token_id")[0] == 11 and toks[11] == "<|endoftext|>"


def test_truncation_moves_special_tokens_into_range():
    full = read_vocab(os.path.join(VOCAB_DIR, "ggml-vocab-falcon.gguf"))
    small = truncate(full, 8)  # eos 11 is beyond the cut
    toks = small.get("tokenizer.ggml.tokens")
    assert len(toks) == 8 and len(small.get("tokenizer.ggml.scores")) == 8
    assert small.get("tokenizer.ggml.eos_token_id") == 7 and toks[7] == "<|endoftext|>"
    assert toks[:7] == full.get("tokenizer.ggml.tokens")[:7]
    # two specials beyond the cut, one inside: they take the highest free ids, lowest original id first
    llama = read_vocab(os.path.join(VOCAB_DIR, "ggml-vocab-llama.gguf"))
    extra = Vocab(llama.fields + (Field("tokenizer.ggml.padding_token_id", 5000, GGUFValueType.UINT32),
                                  Field("tokenizer.ggml.sep_token_id", 4000, GGUFValueType.UINT32)))
    t = truncate(extra, 300)
    tk = t.get("tokenizer.ggml.tokens")
    src = llama.get("tokenizer.ggml.tokens")
    assert t.get("tokenizer.ggml.sep_token_id") == 299 and tk[299] == src[4000]
    assert t.get("tokenizer.ggml.padding_token_id") == 298 and tk[298] == src[5000]
    assert t.get("tokenizer.ggml.token_type")[298] == llama.get("tokenizer.ggml.token_type")[5000]
    assert [t.get(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "unknown")] == [1, 2, 0]
    assert tk[:298] == src[:298]
    with pytest.raises(ValueError):
        truncate(extra, 3)  # 5 specials cannot fit in 3 ids


def test_default_model_has_the_full_vocab(models_dir):
    r = reader(models_dir, "default")
    full = read_vocab(os.path.join(VOCAB_DIR, "ggml-vocab-llama.gguf"))
    assert r.fields["tokenizer.ggml.tokens"].contents() == full.get("tokenizer.ggml.tokens")
    types = {t.name: t.tensor_type.name for t in r.tensors}
    assert types["token_embd.weight"] == "F16" and types["blk.0.ffn_down_t.weight"] == "F16"
    assert types["blk.3.fc2.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"
    assert field(r, "llama.block_count")[0] == 4 and field(r, "powerinfer.ffn_activation")[0] == "reglu"


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_files_are_deterministic(models_dir, tmp_path):
    a, b, c = (str(tmp_path / n) for n in ("a.gguf", "b.gguf", "c.gguf"))
    models.write_tiny(a, "bamboo", "q4_0", planted_out=a + ".npy")
    models.write_tiny(b, "bamboo", "q4_0", planted_out=b + ".npy")
    assert _sha(a) == _sha(b) == _sha(os.path.join(models_dir, "bamboo-q4_0.gguf"))
    assert _sha(a + ".npy") == _sha(os.path.join(models_dir, "bamboo-q4_0.planted.npy"))
    models.write_tiny(c, "bamboo", "q4_0", seed=99)
    assert _sha(c) != _sha(a)
    assert not os.path.exists(a + ".tmp")


def test_full_vocab_option(tmp_path):
    p = str(tmp_path / "f.gguf")
    models.write_tiny(p, "opt", "q8_0", full_vocab=True, n_layer=1, pred_widths=(32,))
    r = GGUFReader(p)
    assert len(r.fields["tokenizer.ggml.tokens"].contents()) == 32000
    shapes = {t.name: tuple(int(x) for x in reversed(t.shape)) for t in r.tensors}
    assert shapes["token_embd.weight"] == (32000, D) and "blk.1.fc1.weight" not in shapes
