"""The reference against a second, deliberately naive implementation written from docs/MODEL_FILES.md (one token at
a time, explicit loops over heads, rotation pairs and cached positions, math.cos/sin), and against rewritten
but equivalent files (GQA as repeated MHA heads, the two FFN-down layouts, tied vs explicit output head)."""
import math

import numpy as np
import pytest

import reference as R
from pimodels.arch import VARIANTS
from pimodels.presets import MATRIX_VARIANTS

PROMPT = [7, 1000, 33, 512, 2]


def q8_0_blocks(x):
    """The engine's activation rounding, written out: per 32 values d = max|x|/127 in float32, q = x * (1/d)
    rounded to the nearest integer, halves to even, result q * float16(d)."""
    out = []
    for blk in np.asarray(x, dtype=np.float32).reshape(-1, 32):
        d = np.float32(np.max(np.abs(blk))) / np.float32(127)
        inv = np.float32(1) / d if d != 0 else np.float32(0)
        q = [float(round(float(v * inv))) for v in blk]  # Python's round() takes halves to even
        out += [qi * float(np.float16(d)) for qi in q]
    return np.array(out)


def naive_logits(meta, tensors, tokens, sparse=False, threshold=0.0, kv_f16=False, act_q8=False):
    arch = meta["general.architecture"]

    def P(k):
        return meta[f"{arch}.{k}"]

    def W(name):
        return tensors[name][0].astype(np.float64)

    def has(name):
        return name in tensors

    d, n_layer = P("embedding_length"), P("block_count")
    nh, nkv = P("attention.head_count"), P("attention.head_count_kv")
    hd = d // nh
    act = meta["powerinfer.ffn_activation"]

    def norm(x, name):
        if arch in ("llama", "bamboo"):
            ms = sum(v * v for v in x) / len(x)
            return x / math.sqrt(ms + P("attention.layer_norm_rms_epsilon")) * W(name + ".weight")
        mu = sum(x) / len(x)
        var = sum((v - mu) ** 2 for v in x) / len(x)
        return (x - mu) / math.sqrt(var + P("attention.layer_norm_epsilon")) * W(name + ".weight") + W(name + ".bias")

    def lin(name, x, weight=None):
        weight = weight or name + ".weight"
        if act_q8 and tensors[weight][1] in ("Q8_0", "Q4_0"):  # the vector side of a quantized dot
            x = q8_0_blocks(x)
        y = W(weight) @ x
        return y + W(name + ".bias") if has(name + ".bias") else y

    def rotate(v, pos):
        if arch == "opt":
            return v
        out = v.copy()
        for i in range(hd // 2):
            ang = pos * P("rope.freq_base") ** (-2.0 * i / hd)
            a, b = (2 * i, 2 * i + 1) if arch in ("llama", "bamboo") else (i, i + hd // 2)
            out[a] = v[a] * math.cos(ang) - v[b] * math.sin(ang)
            out[b] = v[a] * math.sin(ang) + v[b] * math.cos(ang)
        return out

    cache = [[] for _ in range(n_layer)]  # per layer: list over positions of (k heads, v heads)
    logits = []
    for pos, tok in enumerate(tokens):
        x = W("token_embd.weight")[tok]
        if arch == "opt":
            x = x + W("position_embd.weight")[pos + 2]
        for il in range(n_layer):
            p = f"blk.{il}."

            def attention(xn):
                if has(p + "attn_qkv.weight"):
                    qkv = lin(p + "attn_qkv", xn)
                    q, k, v = qkv[: nh * hd], qkv[nh * hd: (nh + nkv) * hd], qkv[(nh + nkv) * hd:]
                else:
                    q, k, v = lin(p + "attn_q", xn), lin(p + "attn_k", xn), lin(p + "attn_v", xn)
                ks = [rotate(k[j * hd:(j + 1) * hd], pos) for j in range(nkv)]
                vs = [v[j * hd:(j + 1) * hd] for j in range(nkv)]
                if kv_f16:  # an F16 cache stores rotated K and V rounded to half precision
                    ks = [a.astype(np.float16).astype(np.float64) for a in ks]
                    vs = [a.astype(np.float16).astype(np.float64) for a in vs]
                cache[il].append((ks, vs))
                heads = []
                for h in range(nh):
                    qh = rotate(q[h * hd:(h + 1) * hd], pos)
                    j = h * nkv // nh
                    s = [float(qh @ cache[il][t][0][j]) / math.sqrt(hd) for t in range(pos + 1)]
                    e = [math.exp(si - max(s)) for si in s]
                    heads.append(sum(e[t] / sum(e) * cache[il][t][1][j] for t in range(pos + 1)))
                return lin(p + "attn_output", np.concatenate(heads))

            def ffn(xn, tap):
                up = lin(p + "ffn_up", xn)
                if act == "relu":
                    a = np.maximum(up, 0)
                else:
                    gate = lin(p + "ffn_gate", xn)
                    g = gate / (1 + np.exp(-gate)) if act == "silu" else np.maximum(gate, 0)
                    a = g * (np.maximum(up, 0) if act == "drelu" else up)
                if sparse:
                    score = lin(p + "fc2", np.maximum(lin(p + "fc1", tap), 0))
                    a = np.array([a[i] if score[i] >= threshold else 0.0 for i in range(len(a))])
                if has(p + "ffn_down_t.weight"):
                    return sum(a[i] * W(p + "ffn_down_t.weight")[i] for i in range(len(a)))
                return lin(p + "ffn_down", a)

            if arch == "falcon":
                xa = norm(x, p + "attn_norm")
                xf = norm(x, p + "attn_norm_2") if has(p + "attn_norm_2.weight") else xa
                x = x + attention(xa) + ffn(xf, x)
            else:
                x = x + attention(norm(x, p + "attn_norm"))
                x = x + ffn(norm(x, p + "ffn_norm"), x)
        head = "output.weight" if has("output.weight") else "token_embd.weight"
        logits.append(lin("output", norm(x, "output_norm"), weight=head))
    return np.array(logits)


@pytest.fixture(scope="module")
def files(models_dir):
    import os

    from gguf import GGUFReader

    def _read(name):
        r = GGUFReader(os.path.join(models_dir, name + ".gguf"))
        return R.read_metadata(r), R.read_tensors(r)
    return _read


@pytest.mark.parametrize("wtype", ["f32", "q4_0"])
@pytest.mark.parametrize("variant", MATRIX_VARIANTS)
def test_reference_matches_naive_implementation(files, variant, wtype):
    meta, tensors = files(f"{variant}-{wtype}")
    ref = R.Model(meta, tensors).forward(PROMPT)
    np.testing.assert_allclose(ref, naive_logits(meta, tensors, PROMPT), rtol=0, atol=1e-10)
    if VARIANTS[variant].predictors:
        trace = R.Trace()
        sparse = R.Model(meta, tensors).forward(PROMPT, sparse=True, trace=trace)
        assert trace.min_margin() > 1e-9  # else float order could legitimately flip a decision
        np.testing.assert_allclose(sparse, naive_logits(meta, tensors, PROMPT, sparse=True), rtol=0, atol=1e-10)


@pytest.mark.parametrize("variant", ["llama", "falcon40b", "opt"])
def test_f16_kv_cache_matches_naive_rounding(files, variant):
    meta, tensors = files(f"{variant}-f16")
    ref = R.Model(meta, tensors).forward(PROMPT, kv_dtype="f16")
    np.testing.assert_allclose(ref, naive_logits(meta, tensors, PROMPT, kv_f16=True), rtol=0, atol=1e-10)


@pytest.mark.parametrize("wtype", ["q8_0", "q4_0"])
@pytest.mark.parametrize("variant", ["relu-llama", "prosparse", "falcon", "opt"])
def test_act_quant_matches_naive_rounding(files, variant, wtype):
    meta, tensors = files(f"{variant}-{wtype}")
    for sparse in (False, True):
        ref = R.Model(meta, tensors).forward(PROMPT, act_quant="q8_0", sparse=sparse)
        np.testing.assert_allclose(ref, naive_logits(meta, tensors, PROMPT, sparse=sparse, act_q8=True),
                                   rtol=0, atol=1e-9)


def _logits(meta, tensors, **opts):
    return R.Model(meta, tensors).forward(PROMPT, **opts)


def test_gqa_equals_mha_with_repeated_kv_heads(files):
    meta, tensors = files("relu-llama-f32")
    hp = R.Model(meta, tensors).hp
    group, hd = hp.n_head // hp.n_head_kv, hp.head_dim
    mha = dict(tensors)
    for il in range(hp.n_layer):
        for w in ("attn_k", "attn_v"):
            name = f"blk.{il}.{w}.weight"
            a = tensors[name][0].reshape(hp.n_head_kv, hd, hp.n_embd)
            mha[name] = (np.repeat(a, group, axis=0).reshape(hp.n_head * hd, hp.n_embd), "F32")
    meta_mha = dict(meta, **{"llama.attention.head_count_kv": hp.n_head})
    for opts in (dict(), dict(sparse=True)):
        np.testing.assert_allclose(_logits(meta, tensors, **opts), _logits(meta_mha, mha, **opts), rtol=0, atol=1e-12)


def test_falcon_mqa_equals_mha_with_repeated_kv_head(files):
    meta, tensors = files("falcon-f32")
    hp = R.Model(meta, tensors).hp
    hd, nq = hp.head_dim, hp.n_head * hp.head_dim
    mha = dict(tensors)
    for il in range(hp.n_layer):
        name = f"blk.{il}.attn_qkv.weight"
        w = tensors[name][0]
        q, k, v = w[:nq], w[nq:nq + hd], w[nq + hd:]
        mha[name] = (np.concatenate([q, np.tile(k, (hp.n_head, 1)), np.tile(v, (hp.n_head, 1))]), "F32")
    meta_mha = dict(meta, **{"falcon.attention.head_count_kv": hp.n_head})
    np.testing.assert_allclose(_logits(meta, tensors), _logits(meta_mha, mha), rtol=0, atol=1e-12)


@pytest.mark.parametrize("variant", ["relu-llama", "bamboo", "prosparse"])
def test_down_layouts_are_equivalent(files, variant):
    meta, tensors = files(f"{variant}-f32")
    other = dict(tensors)
    for name in list(tensors):
        if ".ffn_down_t." in name:
            other[name.replace("ffn_down_t", "ffn_down")] = (np.ascontiguousarray(tensors[name][0].T), "F32")
            del other[name]
        elif ".ffn_down." in name:
            other[name.replace("ffn_down", "ffn_down_t")] = (np.ascontiguousarray(tensors[name][0].T), "F32")
            del other[name]
    assert set(other) != set(tensors)
    for opts in (dict(), dict(sparse=True)):
        np.testing.assert_allclose(_logits(meta, tensors, **opts), _logits(meta, other, **opts), rtol=0, atol=1e-10)


def test_falcon40b_second_norm_is_used(files):
    meta, tensors = files("falcon40b-f32")
    same = dict(tensors)
    for il in range(3):
        for part in ("weight", "bias"):
            same[f"blk.{il}.attn_norm_2.{part}"] = tensors[f"blk.{il}.attn_norm.{part}"]
    single = {k: v for k, v in tensors.items() if "attn_norm_2" not in k}
    np.testing.assert_allclose(_logits(meta, same), _logits(meta, single), rtol=0, atol=1e-12)
    assert np.max(np.abs(_logits(meta, tensors) - _logits(meta, single))) > 1e-3


def test_opt_head_is_tied_to_token_embd(files):
    meta, tensors = files("opt-f32")
    assert "output.weight" not in tensors
    explicit = dict(tensors, **{"output.weight": tensors["token_embd.weight"]})
    np.testing.assert_array_equal(_logits(meta, tensors), _logits(meta, explicit))
