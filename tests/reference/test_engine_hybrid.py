"""The hybrid executor (docs/HYBRID.md) against the numpy reference's sparse semantics, through the test backend
"cpu-device" (the CPU backend table used as the device), for the float sparse models of the matrix. The prompt runs
dense (prefill: device layers by matmul, split layers' FFN on the CPU), every greedy step sparse (split layers: hot
rows on the "device", cold neurons on the CPU, one copy each way). Placements are forced (PI_TEST_PLAN) so that
each shape is certain whatever the cost model says about tiny models: splits whose neuron counts are not multiples
of the group with CPU layers between them, attention on the device without FFN rows, and everything on the device.
Same checks as test_engine_sparse.py: identical per-neuron decisions (profiling counts), logits within its
tolerance, the same greedy tokens."""
import os

import numpy as np
import pytest

from test_engine import N_GREEDY, engine_binary, run_engine  # noqa: F401
from test_engine_sparse import MODELS, check_against, expected, reference_counts, reference_run  # noqa: F401

FLOAT_MODELS = [n for n in MODELS if not n.endswith(("q8_0", "q4_0"))]


def plan(kind, n_layer, n_ff):
    if kind == "split":  # split layers (n_ff / 3 + 1 hot neurons: not a multiple of 32) between CPU layers
        return ",".join(f"split:{n_ff // 3 + 1}" if i % 2 == 0 else "cpu" for i in range(n_layer))
    if kind == "attention":  # attention on the device, no hot rows, then whole layers on the device
        return ",".join("attn" if i == 0 else "gpu" for i in range(n_layer))
    return ",".join(["gpu"] * n_layer + ["out"])


@pytest.mark.parametrize("kind", ["split", "attention", "all"])
@pytest.mark.parametrize("name", FLOAT_MODELS)
def test_hybrid_matches_reference(name, kind, expected, load, models_dir, engine_binary, tmp_path):
    prompt, ref_steps, ref_tokens, trace = expected(name, False)
    model = load(name)
    counts_file = tmp_path / "counts.u64"
    env = {"PI_TEST_BACKEND": "cpu-device", "PI_TEST_VRAM_MIB": "4096",
           "PI_TEST_PLAN": plan(kind, model.hp.n_layer, model.hp.n_ff),
           "PI_TEST_SPARSE": "on", "PI_TEST_COUNTS": str(counts_file)}
    logits, tokens = run_engine(engine_binary, os.path.join(models_dir, name + ".gguf"), prompt, N_GREEDY, env,
                                tmp_path)
    if tokens != ref_tokens:
        _, _, trace = reference_run(model, prompt, False, None, forced=tokens)
    expected_counts = reference_counts(trace)
    counts = np.fromfile(counts_file, dtype=np.uint64).reshape(expected_counts.shape)
    flipped = np.argwhere(counts != expected_counts)
    assert flipped.size == 0, f"{name} {kind}: decisions differ at (layer, neuron) {flipped[:8].tolist()}"
    check_against(name, "hybrid " + kind, logits, tokens, ref_steps, ref_tokens)
