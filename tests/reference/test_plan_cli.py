"""powerinfer-cli --plan: the placement plan of a model file, printed without loading its weights (PI_CLI names the
binary; ctest sets it). Checked on the build's default model, on a llama-2-70b-shaped file that holds only
metadata and tensor infos (its 140 GB of weights are a hole in a sparse file: reading them would take minutes, so
the time limit proves they are not read), and on bench-7b when it is present."""
import os
import re
import struct
import subprocess
import time

import numpy as np
import pytest
from gguf import GGUFWriter

CLI = os.environ.get("PI_CLI", "")
BENCH_7B = os.environ.get("PI_BENCH_7B", "/work/models/bench-7b-f16.gguf")
# Every cost parameter pinned: nothing is measured, no cache is read, the plan is reproducible.
PINNED = ["--gpu-bw", "2000", "--cpu-bw", "50", "--sync-us", "5", "--launch-us", "4", "--transfer-us", "10",
          "--transfer-gbps", "20"]
# The default model is tiny (4 x 512 neurons): at those figures the GPU's fixed launch costs outweigh its reads and
# the CPU takes everything. A slow CPU and cheap launches make every kind of layer occur.
PINNED_TINY = ["--gpu-bw", "2000", "--cpu-bw", "0.5", "--sync-us", "1", "--launch-us", "0.5", "--transfer-us", "1",
               "--transfer-gbps", "20"]
ROW = re.compile(r"^\s*(\d+)\s+(GPU|CPU)\s+(\d+) / (\d+) \(\s*[0-9.]+%\)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+"
                 r"([0-9.]+)\s+([0-9.]+)\s+(\w+)$")


def run(*args, timeout=120, env=None):
    if not (CLI and os.access(CLI, os.X_OK)):
        pytest.fail("PI_CLI must name powerinfer-cli (ctest sets it)")
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


def parse(stdout):
    """The table's rows and the summary numbers."""
    rows = [ROW.match(line) for line in stdout.splitlines()]
    rows = [m for m in rows if m]
    layers = [dict(attention=m[2], gpu_neurons=int(m[3]), n_ff=int(m[4]), gpu_mib=float(m[5]), t_gpu=float(m[6]),
                   t_cpu=float(m[7]), time=float(m[8]), active=float(m[9]), freq=m[10]) for m in rows]
    mem = re.search(r"GPU memory ([0-9.]+) MiB of ([0-9.]+) MiB \(scratch ([0-9.]+) MiB, KV ([0-9.]+) MiB\), "
                    r"output head on the (GPU|CPU)", stdout)
    step = re.search(r"predicted decode step ([0-9.]+) ms .*: ([0-9.]+) tokens/s", stdout)
    planned = re.search(r"planned in ([0-9.]+) ms", stdout)
    assert mem and step and planned, stdout
    return dict(layers=layers, gpu_mib=float(mem[1]), budget_mib=float(mem[2]), scratch_mib=float(mem[3]),
                kv_mib=float(mem[4]), output=mem[5], step_ms=float(step[1]), tokens_s=float(step[2]),
                plan_ms=float(planned[1]))


def test_plan_of_the_default_model_at_two_budgets():
    cpu = run("--plan", "--vram-budget", "0", *PINNED_TINY)
    assert cpu.returncode == 0, cpu.stderr
    assert "loading" not in cpu.stderr  # no load progress: the weights are not loaded
    assert "no weights loaded" in cpu.stdout
    p = parse(cpu.stdout)
    assert len(p["layers"]) == 4 and all(l["n_ff"] == 512 for l in p["layers"])
    assert all(l["attention"] == "CPU" and l["gpu_neurons"] == 0 and l["gpu_mib"] == 0 for l in p["layers"])
    assert p["gpu_mib"] == 0 and p["output"] == "CPU"
    assert all(l["freq"] == "prior" for l in p["layers"])  # the default model carries no profile
    assert "(pinned)" in cpu.stdout and "measured" not in cpu.stdout

    gpu = run("--plan", "--vram-budget", "100", *PINNED_TINY)
    assert gpu.returncode == 0, gpu.stderr
    g = parse(gpu.stdout)
    assert all(l["attention"] == "GPU" and l["gpu_neurons"] == l["n_ff"] for l in g["layers"])
    assert g["output"] == "GPU" and 0 < g["gpu_mib"] <= g["budget_mib"]
    assert g["step_ms"] < p["step_ms"]
    assert abs(g["tokens_s"] * g["step_ms"] / 1e3 - 1) < 1e-2
    # The KV reservation follows --plan-ctx and --plan-sessions.
    kv = parse(run("--plan", "--vram-budget", "100", "--plan-ctx", "512", "--plan-sessions", "3", *PINNED_TINY).stdout)
    assert abs(kv["kv_mib"] - 3 * g["kv_mib"] / 4) < 0.01  # 3 x 512 tokens against 1 x 2048


def test_plan_budget_sweep_is_monotone_and_within_budget():
    previous = float("inf")
    for budget_mib in [0, 1, 2, 3, 3.5, 4, 4.5, 5, 6, 8, 16]:
        out = run("--plan", "--vram-budget", str(budget_mib / 1024), "--neuron-group", "16", *PINNED_TINY)
        assert out.returncode == 0, out.stderr
        p = parse(out.stdout)
        assert p["gpu_mib"] <= budget_mib + 1e-9
        assert sum(l["gpu_mib"] for l in p["layers"]) <= p["gpu_mib"] + 0.05
        assert p["step_ms"] <= previous * (1 + 1e-6)
        previous = p["step_ms"]


def test_plan_with_a_profile_uses_it(tmp_path):
    prof = tmp_path / "profile.gguf"
    w = GGUFWriter(str(prof), "llama")
    w.add_uint64("powerinfer.profile.tokens", 1000)
    rng = np.random.default_rng(1)
    for layer in range(4):
        f = np.full(512, 0.01, dtype=np.float32)
        f[rng.choice(512, 40, replace=False)] = 0.8
        w.add_tensor(f"blk.{layer}.ffn_act_freq", f)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = run("--plan", "--vram-budget", "0.004", "--profile", str(prof), *PINNED_TINY)
    assert out.returncode == 0, out.stderr
    p = parse(out.stdout)
    assert all(l["freq"] == "profile" for l in p["layers"])
    assert all(abs(l["active"] - (40 * 0.8 + 472 * 0.01)) < 0.06 for l in p["layers"])


@pytest.mark.parametrize("args,message", [
    (["--plan-ctx", "0"], "--plan-ctx"),
    (["--plan-sessions", "0"], "--plan-sessions"),
    (["--neuron-group", "70000"], "--neuron-group"),
    (["--gpu-bw", "-1"], "--gpu-bw"),
    (["--cpu-bw", "fast"], "--cpu-bw"),
])
def test_plan_bad_arguments(args, message):
    out = run("--plan", *args)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_plan_of_a_missing_file_or_profile_fails_cleanly(tmp_path):
    out = run("--plan", "-m", str(tmp_path / "missing.gguf"), *PINNED)
    assert out.returncode == 1 and "cannot plan the placement" in out.stderr and "missing.gguf" in out.stderr
    out = run("--plan", "--profile", str(tmp_path / "none.gguf"), *PINNED)
    assert out.returncode == 1 and "none.gguf" in out.stderr


# --- a llama-2-70b-shaped file: metadata and tensor infos only -----------------------------------------------------

def _gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_shapes_only(path, n_layer=80, n_embd=8192, n_ff=28672, n_head=64, n_head_kv=8, n_vocab=32000, width=1024):
    """A GGUF v3 file whose header is complete and whose data section is a hole (the file is truncated up to its
    full size, so it is sparse on disk): every tensor info is valid, no weight byte was ever written."""
    F16, F32 = 1, 0
    kv_dim = n_embd // n_head * n_head_kv
    tensors = [("token_embd.weight", [n_embd, n_vocab], F16), ("output_norm.weight", [n_embd], F32),
               ("output.weight", [n_embd, n_vocab], F16)]
    for l in range(n_layer):
        p = f"blk.{l}."
        tensors += [(p + "attn_norm.weight", [n_embd], F32), (p + "attn_q.weight", [n_embd, n_embd], F16),
                    (p + "attn_k.weight", [n_embd, kv_dim], F16), (p + "attn_v.weight", [n_embd, kv_dim], F16),
                    (p + "attn_output.weight", [n_embd, n_embd], F16), (p + "ffn_norm.weight", [n_embd], F32),
                    (p + "ffn_gate.weight", [n_embd, n_ff], F16), (p + "ffn_up.weight", [n_embd, n_ff], F16),
                    (p + "ffn_down_t.weight", [n_embd, n_ff], F16), (p + "fc1.weight", [n_embd, width], F16),
                    (p + "fc2.weight", [width, n_ff], F16)]
    kvs = [("general.architecture", 8, _gguf_string("llama")),
           ("llama.context_length", 4, struct.pack("<I", 4096)),
           ("llama.embedding_length", 4, struct.pack("<I", n_embd)),
           ("llama.block_count", 4, struct.pack("<I", n_layer)),
           ("llama.feed_forward_length", 4, struct.pack("<I", n_ff)),
           ("llama.attention.head_count", 4, struct.pack("<I", n_head)),
           ("llama.attention.head_count_kv", 4, struct.pack("<I", n_head_kv)),
           ("powerinfer.ffn_activation", 8, _gguf_string("reglu"))]
    head = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for key, vtype, value in kvs:
        head += _gguf_string(key) + struct.pack("<I", vtype) + value
    offset = 0
    for name, dims, ttype in tensors:
        head += _gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        head += struct.pack("<IQ", ttype, offset)
        n = int(np.prod(dims)) * (2 if ttype == F16 else 4)
        offset += (n + 31) // 32 * 32
    head += b"\0" * ((-len(head)) % 32)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + offset)
    return len(head) + offset


def test_plan_of_a_70b_shaped_file_reads_no_weights(tmp_path):
    path = tmp_path / "llama-70b-shapes.gguf"
    size = write_shapes_only(path)
    assert size > 130e9 and os.stat(path).st_blocks * 512 < 100e6  # 140 GB, sparse: only the header is on disk
    t0 = time.monotonic()
    out = run("--plan", "-m", str(path), "--vram-budget", "24", *PINNED, timeout=60)
    wall = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    p = parse(out.stdout)
    assert len(p["layers"]) == 80 and all(l["n_ff"] == 28672 for l in p["layers"])
    assert all(l["freq"] == "prior" and abs(l["active"] - 2867.2) < 0.1 for l in p["layers"])
    assert 20 * 1024 < p["gpu_mib"] <= 24 * 1024
    # Faulting in even the zero pages of 140 GB takes far longer than this.
    print(f"70B-shaped plan: {p['plan_ms']:.1f} ms in the library, {wall:.2f} s for the process")
    assert wall < 5.0, f"planning took {wall:.2f} s"


@pytest.mark.skipif(not os.path.exists(BENCH_7B), reason=f"{BENCH_7B} is not present")
@pytest.mark.parametrize("budget", [2, 4, 8])
def test_plan_of_bench_7b(budget):
    t0 = time.monotonic()
    out = run("--plan", "-m", BENCH_7B, "--vram-budget", str(budget), *PINNED)
    wall = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    p = parse(out.stdout)
    assert len(p["layers"]) == 32 and p["gpu_mib"] <= budget * 1024
    print(f"bench-7b at {budget} GiB: {p['plan_ms']:.1f} ms in the library, {wall:.2f} s for the process, "
          f"{p['tokens_s']:.1f} tokens/s predicted")
    assert wall < 2.0
