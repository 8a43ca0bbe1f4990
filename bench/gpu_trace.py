"""Where a GPU decode step's time goes, from CUPTI's own timestamps (torch.profiler), no Nsight needed.

Drives libpowerinfer through bench/gpu_trace_shim.c (built by the caller into a shared library), warms a session
(the first decode steps record the CUDA graph), then traces STEPS more decode steps and prints:
  - wall time per step, device busy time per step (union of kernel and copy intervals) and idle time;
  - the kernels by total time (count and mean per step);
  - the idle gaps on the device: how many, how long, and the one between steps (host turnaround);
  - one step's kernel sequence with durations (the first LAYER_KERNELS entries).
usage: python3 bench/gpu_trace.py SHIM.so MODEL [--threads 16] [--vram 60] [--sparse] [--steps 16]
"""
import argparse
import ctypes
import json
import os
import sys
import tempfile
import time
from collections import defaultdict


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("shim")
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--vram", type=int, default=60, help="VRAM budget in GiB")
    p.add_argument("--sparse", action="store_true")
    p.add_argument("--prompt", type=int, default=32)
    p.add_argument("--warm", type=int, default=8, help="decode steps before tracing (graph recording)")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--show", type=int, default=40, help="kernels of one step listed in order")
    return p.parse_args()


def merged_busy(intervals):
    """Total length of the union of [start, end) intervals, and the gaps between them (start, length)."""
    busy, gaps = 0.0, []
    cur_s = cur_e = None
    for s, e in sorted(intervals):
        if cur_e is None:
            cur_s, cur_e = s, e
        elif s > cur_e:
            busy += cur_e - cur_s
            gaps.append((cur_e, s - cur_e))
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        busy += cur_e - cur_s
    return busy, gaps


def main():
    a = parse_args()
    import torch  # noqa: F401  (initialises CUDA and CUPTI in this process)
    from torch.profiler import ProfilerActivity, profile

    lib = ctypes.CDLL(a.shim)
    lib.trace_load.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    if lib.trace_load(a.model.encode(), a.threads, a.vram, int(a.sparse)) != 0:
        sys.exit("load failed")
    for session in ("first", "second"):  # the second as a counted run of powerinfer-bench sees it
        if session == "second" and lib.trace_renew() != 0:
            sys.exit("new session failed")
        t0 = time.perf_counter()
        if lib.trace_prompt(a.prompt) != 0:
            sys.exit("prompt failed")
        prompt_ms = (time.perf_counter() - t0) * 1e3
        warm_ms = []
        for _ in range(a.warm):  # the first steps size the workspace and record the graph: timed one by one
            t0 = time.perf_counter()
            if lib.trace_steps(1) != 0:
                sys.exit("warm-up failed")
            warm_ms.append((time.perf_counter() - t0) * 1e3)
        print(f"{session} session: prompt of {a.prompt} {prompt_ms:.2f} ms; first decode steps (ms):",
              " ".join(f"{t:.2f}" for t in warm_ms))
    t0 = time.perf_counter()
    lib.trace_steps(a.steps)
    untraced = (time.perf_counter() - t0) / a.steps * 1e3
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        if lib.trace_steps(a.steps) != 0:
            sys.exit("traced steps failed")
        traced = (time.perf_counter() - t0) / a.steps * 1e3
    path = os.path.join(tempfile.mkdtemp(), "trace.json")
    prof.export_chrome_trace(path)
    lib.trace_free()
    events = json.load(open(path))["traceEvents"]
    dev = [e for e in events if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    if not dev:
        sys.exit("the trace holds no device events (CUPTI did not see the module's work)")
    dev.sort(key=lambda e: e["ts"])
    span = dev[-1]["ts"] + dev[-1]["dur"] - dev[0]["ts"]
    busy, gaps = merged_busy([(e["ts"], e["ts"] + e["dur"]) for e in dev])
    n = a.steps
    print(f"wall per step: {untraced:.3f} ms untraced, {traced:.3f} ms traced "
          f"({1e3 / untraced:.1f} tok/s untraced)")
    print(f"device: span {span / n / 1e3:.3f} ms/step, busy {busy / n / 1e3:.3f}, idle {(span - busy) / n / 1e3:.3f} "
          f"({len(dev) / n:.0f} device operations a step)")
    by_name = defaultdict(lambda: [0, 0.0])
    for e in dev:
        k = by_name[e["name"][:90]]
        k[0] += 1
        k[1] += e["dur"]
    print("\nper step: total us, count, mean us, name")
    for name, (c, t) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:25]:
        print(f"  {t / n:9.1f} {c / n:6.1f} {t / c:8.2f}  {name}")
    lengths = sorted(g for _, g in gaps)
    buckets = [(0, 1), (1, 2), (2, 4), (4, 8), (8, 16), (16, 64), (64, 1e9)]
    print("\nidle gaps per step: range us -> count, total us")
    for lo, hi in buckets:
        sel = [g for g in lengths if lo <= g < hi]
        if sel:
            print(f"  [{lo}, {hi if hi < 1e9 else 'inf'}) -> {len(sel) / n:6.1f}, {sum(sel) / n:8.1f}")
    print("  largest:", ", ".join(f"{g:.1f}" for g in lengths[-min(len(lengths), n + 3):]))
    # One step in order: from the first kernel after the largest gap.
    big = sorted(gaps, key=lambda g: -g[1])[:2]
    start = min(g[0] + g[1] for g in big) if big else dev[0]["ts"]
    seq = [e for e in dev if e["ts"] >= start][: a.show]
    print(f"\none step's first {len(seq)} device operations: start offset us, duration us, gap before us, name")
    prev_end = None
    for e in seq:
        gap = 0.0 if prev_end is None else e["ts"] - prev_end
        print(f"  {e['ts'] - start:9.1f} {e['dur']:8.2f} {gap:7.2f}  {e['name'][:80]}")
        prev_end = e["ts"] + e["dur"]
    # The large gaps: what ran before and after each (the step boundary is one of them).
    ends = sorted((e["ts"] + e["dur"], e["name"][:60]) for e in dev)
    print("\nidle gaps of 16 us or more (first 8): length us, after, before")
    for g_start, g_len in [g for g in gaps if g[1] >= 16][:8]:
        before = max((x for x in ends if x[0] <= g_start + 1e-3), default=(0, "?"))[1]
        after = next((e["name"][:60] for e in dev if e["ts"] >= g_start + g_len - 1e-3), "?")
        print(f"  {g_len:7.1f}  after {before}  /  before {after}")
    host = [e for e in events if e.get("ph") == "X" and e.get("cat") in ("cuda_runtime", "cuda_driver")]
    # Step boundaries on the host: each graph launch against the sync before it and the first device work after it.
    launches = sorted((e for e in host if e["name"] == "cudaGraphLaunch"), key=lambda e: e["ts"])
    syncs = sorted((e for e in host if e["name"] == "cudaEventSynchronize"), key=lambda e: e["ts"])
    rows = []
    for L in launches:
        prev_sync = max((e for e in syncs if e["ts"] + e["dur"] <= L["ts"]), key=lambda e: e["ts"], default=None)
        first = next((e for e in dev if e["ts"] >= L["ts"]), None)
        last_dev = max((x for x in ends if prev_sync and x[0] <= prev_sync["ts"] + prev_sync["dur"]), default=None)
        if prev_sync and first and last_dev:
            rows.append((prev_sync["ts"] + prev_sync["dur"] - last_dev[0], L["ts"] - (prev_sync["ts"] + prev_sync["dur"]),
                         L["dur"], first["ts"] - L["ts"], first["ts"] - last_dev[0]))
    if rows:
        med = lambda k: sorted(r[k] for r in rows)[len(rows) // 2]
        print(f"\nstep turnaround (medians of {len(rows)}, us; CUPTI slows API calls): device done -> sync returns "
              f"{med(0):.1f}; -> graph launch called {med(1):.1f}; launch call {med(2):.1f}; launch called -> first "
              f"device work {med(3):.1f}; device idle between steps {med(4):.1f}")
    by_api = defaultdict(lambda: [0, 0.0])
    for e in host:
        k = by_api[e["name"]]
        k[0] += 1
        k[1] += e["dur"]
    print("\nhost API calls per step: total us, count, name")
    for name, (c, t) in sorted(by_api.items(), key=lambda kv: -kv[1][1])[:12]:
        print(f"  {t / n:9.1f} {c / n:6.1f}  {name}")


if __name__ == "__main__":
    main()
