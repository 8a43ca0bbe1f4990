"""The sample programs as a user runs them: powerinfer-cli (generation on the default model, --stats,
--profile-out, bad arguments) and powerinfer-bench (--json, dense and sparse paths). PI_CLI / PI_BENCH name the
binaries (ctest sets them)."""
import json
import os
import re
import subprocess

import numpy as np
import pytest
from gguf import GGUFReader

CLI = os.environ.get("PI_CLI", "")
BENCH = os.environ.get("PI_BENCH", "")


def run(binary, *args, timeout=300):
    if not (binary and os.access(binary, os.X_OK)):
        pytest.fail("PI_CLI and PI_BENCH must name the sample binaries (ctest sets them)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)


def test_cli_without_arguments_generates_with_the_default_model():
    p = run(CLI, "-n", "16")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Once upon a time") and len(p.stdout) > len("Once upon a time") + 8
    assert re.search(r"generation: 16 tokens in [0-9.]+ s \([0-9.]+ tokens/s\)", p.stderr), p.stderr


def test_cli_stats_report_the_measured_sparsity():
    p = run(CLI, "-n", "24", "--temp", "0", "--stats")
    assert p.returncode == 0, p.stderr
    m = re.search(r"sparsity over (\d+) tokens", p.stderr)
    assert m and int(m.group(1)) == 24, p.stderr
    means = re.search(r"mean\s+([0-9.]+)%\s+([0-9.]+)%\s+([0-9.]+)%", p.stderr)
    mean, rows_read, predictor = float(means.group(1)), float(means.group(2)), float(means.group(3))
    assert 3.0 < mean < 40.0  # the default model's planted mean is about 11.6%
    # ReGLU reads every active neuron's gate row but its up and down rows only where the gate is positive.
    assert mean / 3.0 <= rows_read < mean, p.stderr
    # The default model's predictors are float: fc2 is kept transposed and the rows of zero hidden units skipped.
    assert 20.0 < predictor < 100.0, p.stderr
    dense = run(CLI, "-n", "24", "--temp", "0", "--stats", "--sparse", "off")
    assert dense.returncode == 0 and "sparsity over 0 tokens" in dense.stderr


def test_cli_threshold_minus_infinity_generates_the_dense_text():
    a = run(CLI, "-n", "12", "--temp", "0", "--sparse", "off")
    b = run(CLI, "-n", "12", "--temp", "0", "--sparse", "on", "--threshold", "-inf")
    assert a.returncode == 0 and b.returncode == 0
    assert a.stdout == b.stdout


def test_cli_profile_out_writes_a_profile(tmp_path):
    out = tmp_path / "profile.gguf"
    p = run(CLI, "-n", "20", "--profile-out", str(out))
    assert p.returncode == 0, p.stderr
    reader = GGUFReader(str(out))
    freq = [np.asarray(t.data) for t in reader.tensors if t.name.endswith("ffn_act_freq")]
    assert len(freq) == 4 and all(f.shape == (512,) for f in freq)
    assert int(reader.fields["powerinfer.profile.tokens"].parts[-1][0]) > 20  # prompt tokens count too
    assert all(0.02 < float(f.mean()) < 0.4 for f in freq)


@pytest.mark.parametrize("args,message", [
    (["--sparse", "sometimes"], "not auto, on or off"),
    (["--threshold"], "needs a value"),
    (["--bogus"], "unknown option"),
    (["-n", "-3"], "not an integer"),
])
def test_cli_rejects_bad_arguments(args, message):
    p = run(CLI, *args)
    assert p.returncode == 2 and message in p.stderr


def test_cli_reports_load_and_session_errors(models_dir, tmp_path):
    p = run(CLI, "-m", str(tmp_path / "missing.gguf"))
    assert p.returncode == 1 and "cannot load the model" in p.stderr
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(open(os.path.join(models_dir, "llama-f16.gguf"), "rb").read()[:5000])
    p = run(CLI, "-m", str(truncated))
    assert p.returncode == 1 and "cannot load the model" in p.stderr
    p = run(CLI, "-m", os.path.join(models_dir, "llama-f16.gguf"), "--sparse", "on")
    assert p.returncode == 1 and "predictors" in p.stderr


def test_bench_json_measures_dense_and_sparse():
    p = run(BENCH, "-r", "1", "-p", "8", "-n", "8", "-c", "32", "--json", "--no-bandwidth")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    runs = {r["path"]: r for r in res["runs"]}
    assert set(runs) == {"dense", "sparse"}
    assert all(r["decode_tps"]["median"] > 0 and r["prefill_tps"]["median"] > 0 for r in runs.values())
    assert runs["dense"]["mean_active_fraction"] == 1.0
    assert 0.02 < runs["sparse"]["mean_active_fraction"] < 0.4
    assert runs["sparse"]["bytes_per_token"] < runs["dense"]["bytes_per_token"]
    assert 0.2 < runs["sparse"]["mean_predictor_read"] < 1.0  # float predictors: zero hidden units skipped


def test_bench_roofline_only_for_runs_on_the_host():
    """Bytes over the host's bandwidth bound a CPU run's step, not one with weights on a device (the hybrid reads
    those in parallel on the device): the bench reports no roofline there instead of a fraction above 100 %."""
    args = ("-r", "1", "-p", "4", "-n", "4", "-c", "16", "--mode", "sparse", "--json")
    host = run(BENCH, *args)
    assert host.returncode == 0, host.stderr
    res = json.loads(host.stdout)
    assert res["gpu_bytes"] == 0 and res["bandwidth_gbps"] > 0
    assert res["runs"][0]["roofline_tps"] > 0 and res["runs"][0]["roofline_fraction"] > 0
    # "cpu-device": the CPU backend's table as the device (the hybrid executor without a GPU).
    device = run(BENCH, *args, "--backend", "cpu-device", "--vram-budget", "1")
    assert device.returncode == 0, device.stderr
    res = json.loads(device.stdout)
    assert res["gpu_bytes"] > 0 and res["bandwidth_gbps"] > 0
    assert res["runs"][0]["roofline_tps"] is None and res["runs"][0]["roofline_fraction"] is None
    text = run(BENCH, *args[:-1], "--backend", "cpu-device", "--vram-budget", "1")
    assert text.returncode == 0, text.stderr
    assert "no roofline" in text.stdout and "reaches" not in text.stdout


def test_bench_rejects_sparse_mode_on_a_dense_model(models_dir):
    p = run(BENCH, "-m", os.path.join(models_dir, "llama-f16.gguf"), "--mode", "sparse", "--no-bandwidth")
    assert p.returncode == 2 and "predictors" in p.stderr
