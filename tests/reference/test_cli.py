"""The two command lines: tests/reference/reference.py and tools/make_test_model.py."""
import json
import os
import subprocess
import sys

import numpy as np
from gguf import GGUFReader

import reference as R
from pimodels import presets

REF = os.path.join(presets.REPO, "tests", "reference", "reference.py")
TOOL = os.path.join(presets.REPO, "tools", "make_test_model.py")


def run(*args):
    out = subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True)
    return out.stdout


def test_reference_cli(models_dir, load, tmp_path):
    path = os.path.join(models_dir, "prosparse-q8_0.gguf")
    npy = str(tmp_path / "l.npy")
    res = json.loads(run(REF, path, "--tokens", "1,20,300", "--sparse", "--kv", "f16", "--act-quant", "q8_0",
                         "--greedy", "3", "--out", npy))
    m = load("prosparse-q8_0")
    want = m.forward([1, 20, 300], sparse=True, kv_dtype="f16", act_quant="q8_0")
    np.testing.assert_array_equal(np.load(npy), want)
    assert res["tokens"] == [1, 20, 300] and res["last_logits"]["argmax"] == int(np.argmax(want[-1]))
    assert res["last_logits"]["max"] == float(want[-1].max())
    assert res["greedy"] == R.greedy(m, [1, 20, 300], 3, sparse=True, kv_dtype="f16", act_quant="q8_0")
    assert len(res["sparse"]["active_fraction"]) == 3 and res["sparse"]["min_margin"] > 0


def test_reference_cli_safe_prompt(models_dir, load):
    path = os.path.join(models_dir, "falcon-f16.gguf")
    res = json.loads(run(REF, path, "--safe-prompt", "5", "--min-margin", "0.002", "--greedy", "4"))
    assert len(res["tokens"]) == 5 and res["sparse"]["min_margin"] >= 0.002
    trace = R.Trace()
    R.greedy(load("falcon-f16"), res["tokens"], 4, sparse=True, trace=trace)
    assert trace.min_margin() >= 0.002


def test_tool_cli_lists_and_writes(tmp_path):
    assert run(TOOL, "matrix", "--list").split() == presets.matrix_files()
    assert run(TOOL, "matrix", "--list", "--variants", "llama", "--types", "f16", "--no-default").split() == \
        ["llama-f16.gguf"]
    out, npy = str(tmp_path / "m.gguf"), str(tmp_path / "m.npy")
    run(TOOL, "model", "--variant", "falcon40b", "--type", "bf16", "--out", out, "--layers", "4",
        "--pred-width", "64", "--planted-out", npy)
    r = GGUFReader(out)
    assert r.fields["falcon.block_count"].contents() == 4
    assert {t.name: t.tensor_type.name for t in r.tensors}["blk.3.fc1.weight"] == "BF16"
    assert np.load(npy).shape == (4, 256)
    bad = subprocess.run([sys.executable, TOOL, "matrix", "--list", "--types", "q5_0"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown" in bad.stderr
