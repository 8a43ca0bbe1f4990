"""Activation profiles written by the library (pi_session_save_profile, through tests/reference/engine_run.c), read
back with the `gguf` Python package: per layer blk.N.ffn_act_freq holds the fraction of profiled tokens that
predicted each neuron active, which must match the reference's own decisions on the same tokens and the planted
firing probabilities of the tool-written model within the statistical tolerance of test_planting.py (512 random
tokens: 8 prompts of 64). tools/add_profile.py then copies a profile into a model file, where the loader binds it."""
import os
import subprocess
import sys

import numpy as np
import pytest
from gguf import GGUFReader

import reference as R
from test_engine import engine_binary, run_engine  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools")
CASES = [("relu-llama", "f16"), ("bamboo", "q4_0"), ("falcon", "f32"), ("opt", "q8_0"), ("prosparse", "bf16")]


def profile_engine(binary, model_path, prompts, tmp_path):
    profile = tmp_path / "profile.gguf"
    tokens = ";".join(",".join(map(str, p)) for p in prompts)
    out = tmp_path / "logits.f32"
    proc = subprocess.run([binary, model_path, tokens, "1", str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PI_TEST_SPARSE": "on", "PI_TEST_PROFILE": str(profile)})
    assert proc.returncode == 0, proc.stderr
    return profile


def read_profile(path):
    reader = GGUFReader(str(path))
    tokens = int(reader.fields["powerinfer.profile.tokens"].parts[-1][0])
    freq = {t.name: np.asarray(t.data, dtype=np.float64) for t in reader.tensors}
    return tokens, freq


@pytest.mark.parametrize("variant,wtype", CASES)
def test_profile_matches_decisions_and_planted(variant, wtype, load, models_dir, engine_binary, tmp_path):
    name = f"{variant}-{wtype}"
    m = load(name)
    rng = np.random.default_rng(2024)
    prompts = [[int(t) for t in rng.integers(0, m.hp.n_vocab, size=64)] for _ in range(9)]  # the 9th: generation
    path = profile_engine(engine_binary, os.path.join(models_dir, name + ".gguf"), prompts, tmp_path)
    tokens, freq = read_profile(path)
    assert tokens == 512
    planted = np.load(os.path.join(models_dir, f"{name}.planted.npy"))
    act_quant = "q8_0" if wtype in ("q8_0", "q4_0") else None
    trace = R.Trace()  # the reference's decisions on the same prompts: the engine's prefill is dense, so trace a
    for p in prompts[:8]:  # dense run (threshold -inf) and judge its scores with the real threshold
        m.reset()
        m.forward(p, sparse=True, threshold=-np.inf, kv_dtype="f16", act_quant=act_quant, trace=trace)
    trace.threshold = m.hp.sparse_threshold
    for il in range(m.hp.n_layer):
        f = freq[f"blk.{il}.ffn_act_freq"]
        assert f.shape == (m.hp.n_ff,)
        ref = trace.layer_masks(il).mean(axis=0)
        # All but a few decisions (a score within rounding of the threshold; quantized: see test_engine_sparse).
        limit = 0.001 if act_quant is None else 0.02
        assert np.abs(f - ref).sum() <= limit * ref.sum() + 1e-9, il
        hot = planted[il] > 0.3
        assert np.mean(np.abs(f - planted[il])) < 0.03, il
        assert abs(f[hot].mean() - planted[il][hot].mean()) < 0.04, il
        assert abs(f[~hot].mean() - planted[il][~hot].mean()) < 0.01, il


def test_add_profile_writes_the_model_file_the_loader_binds(load, models_dir, engine_binary, tmp_path):
    name = "relu-llama-f16"
    m = load(name)
    rng = np.random.default_rng(7)
    prompts = [[int(t) for t in rng.integers(0, m.hp.n_vocab, size=32)] for _ in range(3)]
    src = os.path.join(models_dir, name + ".gguf")
    profile = profile_engine(engine_binary, src, prompts, tmp_path)
    out = tmp_path / "with-profile.gguf"
    proc = subprocess.run([sys.executable, os.path.join(TOOLS, "add_profile.py"), src, str(profile), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    _, freq = read_profile(profile)
    reader = GGUFReader(str(out))
    got = {t.name: np.asarray(t.data) for t in reader.tensors}
    for il in range(m.hp.n_layer):
        np.testing.assert_array_equal(got[f"blk.{il}.ffn_act_freq"], freq[f"blk.{il}.ffn_act_freq"])
    original = {t.name: np.asarray(t.data) for t in GGUFReader(src).tensors}
    for k, v in original.items():
        np.testing.assert_array_equal(got[k], v)
    # The engine loads the file with the profile and computes the same logits as from the original.
    a, _ = run_engine(engine_binary, src, prompts[0], 2, {"PI_TEST_SPARSE": "on"}, tmp_path)
    b, _ = run_engine(engine_binary, str(out), prompts[0], 2, {"PI_TEST_SPARSE": "on"}, tmp_path)
    np.testing.assert_array_equal(a, b)


def test_add_profile_rejects_a_profile_of_another_shape(models_dir, tmp_path):
    import gguf
    bad = tmp_path / "bad.gguf"
    w = gguf.GGUFWriter(str(bad), "llama")
    w.add_uint64("powerinfer.profile.tokens", 10)
    w.add_tensor("blk.0.ffn_act_freq", np.zeros(7, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    proc = subprocess.run([sys.executable, os.path.join(TOOLS, "add_profile.py"),
                           os.path.join(models_dir, "relu-llama-f16.gguf"), str(bad), str(tmp_path / "o.gguf")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "blk.0.ffn_act_freq" in proc.stderr and "Traceback" not in proc.stderr
