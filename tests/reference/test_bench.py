"""The bench-7b writer (streamed), on scaled-down configurations; the real shapes with 2 layers are `slow`."""
import gc
import os
import weakref

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader

import reference as R
from pimodels import models
from pimodels.storage import TensorPlan, write_gguf

SMALL = dict(n_layer=2, n_embd=256, n_ff=704, n_head=8, pred_width=128)


def expected_tensors(n_layer, d, ff, w, n_vocab, dense):
    want = {"token_embd.weight": (n_vocab, d), "output_norm.weight": (d,), "output.weight": (n_vocab, d)}
    for il in range(n_layer):
        p = f"blk.{il}."
        want.update({p + "attn_norm.weight": (d,), p + "attn_q.weight": (d, d), p + "attn_k.weight": (d, d),
                     p + "attn_v.weight": (d, d), p + "attn_output.weight": (d, d), p + "ffn_norm.weight": (d,),
                     p + "ffn_gate.weight": (ff, d), p + "ffn_up.weight": (ff, d)})
        if dense:
            want[p + "ffn_down.weight"] = (d, ff)
        else:
            want.update({p + "ffn_down_t.weight": (ff, d), p + "fc1.weight": (w, d), p + "fc2.weight": (ff, w)})
    return want


def check_file(path, wtype, dense, n_layer, n_embd, n_ff, n_head, pred_width, n_vocab):
    r = GGUFReader(path)
    got = {t.name: (tuple(int(x) for x in reversed(t.shape)), t.tensor_type.name) for t in r.tensors}
    assert {k: v[0] for k, v in got.items()} == expected_tensors(n_layer, n_embd, n_ff, pred_width, n_vocab, dense)
    for name, (shape, tname) in got.items():
        assert tname == (wtype.upper() if len(shape) == 2 else "F32"), name
    f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("tokenizer.")}
    assert f["general.architecture"] == "llama"
    dims = (f["llama.block_count"], f["llama.embedding_length"], f["llama.feed_forward_length"])
    assert dims == (n_layer, n_embd, n_ff)
    assert f["llama.attention.head_count"] == f["llama.attention.head_count_kv"] == n_head  # no GQA
    assert f["llama.rope.dimension_count"] == n_embd // n_head
    assert f["powerinfer.ffn_activation"] == "reglu"
    assert ("powerinfer.sparse_threshold" in f) == (not dense)
    assert len(r.fields["tokenizer.ggml.tokens"].data) == n_vocab
    data = sum(int(t.n_bytes) for t in r.tensors)
    assert data < os.path.getsize(path) < data + 32 * len(got) + 2_000_000  # data + padding + header/vocab
    return r


@pytest.fixture(scope="module")
def small_bench(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    out = {}
    for wtype, dense in (("f16", False), ("f16", True), ("q4_0", False)):
        path = str(d / f"bench-{wtype}{'-dense' if dense else ''}.gguf")
        planted = models.write_bench(path, wtype, dense=dense, n_vocab=1024, planted_out=path + ".npy",
                                     progress=False, **SMALL)
        out[(wtype, dense)] = (path, planted)
    return out


@pytest.mark.parametrize("wtype,dense", [("f16", False), ("f16", True), ("q4_0", False)])
def test_small_bench_names_shapes_types(small_bench, wtype, dense):
    path, planted = small_bench[(wtype, dense)]
    check_file(path, wtype, dense, n_vocab=1024, **SMALL)
    if dense:
        assert planted is None and not os.path.exists(path + ".npy")
    else:
        assert planted.shape == (2, 704) and abs(planted.mean() - 0.1155) < 0.005
        np.testing.assert_array_equal(np.load(path + ".npy"), planted)


def test_dense_bench_holds_the_same_weights(small_bench):
    sparse = {t.name: t for t in GGUFReader(small_bench[("f16", False)][0]).tensors}
    dense = {t.name: t for t in GGUFReader(small_bench[("f16", True)][0]).tensors}
    for name, t in dense.items():
        if ".ffn_down." in name:
            down_t = sparse[name.replace("ffn_down", "ffn_down_t")]
            np.testing.assert_array_equal(np.asarray(t.data), np.asarray(down_t.data).T)
        else:
            np.testing.assert_array_equal(np.asarray(t.data), np.asarray(sparse[name].data))
    ms, md = R.load(small_bench[("f16", False)][0]), R.load(small_bench[("f16", True)][0])
    tokens = [3, 500, 77, 1000]
    np.testing.assert_allclose(ms.forward(tokens, sparse=True, threshold=-np.inf), md.forward(tokens),
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize("wtype", ["f16", "q4_0"])
def test_small_bench_fires_about_11_6_percent_on_real_hidden_states(small_bench, wtype):
    """Calibrated on Gaussian taps (DESIGN.md 8); the model's own hidden states must give about the same rates."""
    path, planted = small_bench[(wtype, False)]
    m = R.load(path)
    rng = np.random.default_rng(1)
    trace = R.Trace()
    for _ in range(4):
        m.reset()
        m.forward(rng.integers(0, 1024, size=64), sparse=True, trace=trace)
    for il in range(2):
        f = trace.layer_masks(il).mean(axis=0)
        hot = planted[il] > 0.3
        assert abs(f.mean() - 0.1155) < 0.015  # measured 0.112-0.117
        assert abs(f[hot].mean() - 0.6) < 0.05 and abs(f[~hot].mean() - 0.03) < 0.01
        assert np.mean(np.abs(f - planted[il])) < 0.03  # measured 0.014-0.018


def test_writer_streams_one_tensor_at_a_time(tmp_path):
    """Each tensor's data is produced only after the previous one was written and released."""
    live = []
    order = []

    def producer(i):
        def make():
            gc.collect()
            assert all(ref() is None for ref in live), "an earlier tensor is still in memory"
            order.append(i)
            a = np.full((64, 32), i, dtype=np.float32)
            live.append(weakref.ref(a))
            return a
        return make

    plans = [TensorPlan(f"t{i}", (64, 32), GGMLQuantizationType.F32, producer(i)) for i in range(5)]
    path = str(tmp_path / "s.gguf")
    write_gguf(path, "llama", [], [], plans)
    assert order == list(range(5))
    r = GGUFReader(path)
    for i, t in enumerate(r.tensors):
        assert t.name == f"t{i}" and np.all(np.asarray(t.data) == i)


@pytest.mark.slow
@pytest.mark.parametrize("wtype", ["f16", "q4_0"])
def test_bench_7b_shapes_with_two_layers(tmp_path, wtype):
    path = str(tmp_path / f"b-{wtype}.gguf")
    planted = models.write_bench(path, wtype, n_layer=2, progress=False)
    check_file(path, wtype, False, n_layer=2, n_embd=4096, n_ff=11008, n_head=32, pred_width=1024, n_vocab=32000)
    assert abs(planted.mean() - 0.1155) < 0.003
