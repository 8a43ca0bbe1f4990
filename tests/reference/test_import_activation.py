"""tools/import_powerinfer_activation.py: PowerInfer's activation_{i}.pt files -> our GGUF activation profile.

Torch is not installed here, so the test writes torch-format files itself: a zip with `<name>/data.pkl` (pickle
protocol 2, made with stand-in `torch` / `torch._utils` modules so the pickle names the real torch globals) and the
raw storage bytes in `<name>/data/0`, as torch.save does.
"""
import collections
import contextlib
import os
import pickle
import subprocess
import sys
import types
import zipfile

import numpy as np
import pytest
from gguf import GGUFReader

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "import_powerinfer_activation.py")

STORAGE_FOR = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage",
               np.dtype(np.int32): "IntStorage", np.dtype(np.float16): "HalfStorage"}


@contextlib.contextmanager
def fake_torch():
    """Stand-in modules so that pickle writes GLOBAL torch._utils._rebuild_tensor_v2 and torch.<X>Storage."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: only pickled by reference")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in STORAGE_FOR.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch, utils
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def write_pt(path, storage: np.ndarray, offset=0, size=None, stride=(1,), prefix="archive"):
    """A torch.save-style file of a tensor viewing `storage` (1-D) at offset/size/stride."""
    size = (storage.size - offset,) if size is None else size

    class StorageRef:
        pass

    ref = StorageRef()
    with fake_torch() as (torch, utils):
        storage_type = getattr(torch, STORAGE_FOR[storage.dtype])

        class Tensor:
            def __reduce__(self):
                return (utils._rebuild_tensor_v2, (ref, offset, size, stride, False, collections.OrderedDict()))

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if obj is ref:
                    return ("storage", storage_type, "0", "cpu", storage.size)
                return None

        import io
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(Tensor())
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{prefix}/data.pkl", buf.getvalue())
        z.writestr(f"{prefix}/byteorder", "little")
        z.writestr(f"{prefix}/data/0", storage.astype(storage.dtype.newbyteorder("<")).tobytes())
        z.writestr(f"{prefix}/version", "3\n")


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)], capture_output=True, text=True)


def read_profile(path):
    r = GGUFReader(str(path))
    tensors = {t.name: np.array(t.data) for t in r.tensors}
    field = r.fields["powerinfer.profile.tokens"]
    tokens = int(field.parts[field.data[0]][0])
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    return tensors, tokens, arch


def test_counts_become_frequencies_with_tokens(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "activation"
    d.mkdir()
    counts = [rng.integers(0, 1001, size=n).astype(np.float32) for n in (96, 96, 100)]
    for i, c in enumerate(counts):
        write_pt(d / f"activation_{i}.pt", c)
    out = tmp_path / "profile.gguf"
    r = run_tool(d, out, "--tokens", 1000, "--arch", "bamboo")
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr
    tensors, tokens, arch = read_profile(out)
    assert tokens == 1000 and arch == "bamboo"
    assert sorted(tensors) == [f"blk.{i}.ffn_act_freq" for i in range(3)]
    for i, c in enumerate(counts):
        f = tensors[f"blk.{i}.ffn_act_freq"]
        assert f.dtype == np.float32 and f.shape == c.shape
        np.testing.assert_array_equal(f, (c.astype(np.float64) / 1000).astype(np.float32))


def test_integer_view_without_tokens_is_normalised_by_the_layer_max_with_a_warning(tmp_path):
    d = tmp_path / "activation"
    d.mkdir()
    # int64 counts seen through a strided view with an offset (every other element from 3 on): the tool must
    # follow torch's geometry, not read the storage whole. Another archive folder name than "archive".
    storage = np.arange(40, dtype=np.int64) * 7
    write_pt(d / "activation_0.pt", storage, offset=3, size=(10,), stride=(2,), prefix="activation_0")
    out = tmp_path / "p.gguf"
    r = run_tool(d, out)
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and "relative" in r.stderr
    tensors, tokens, _ = read_profile(out)
    assert tokens == 0
    expect = storage[3:23:2].astype(np.float64)
    np.testing.assert_array_equal(tensors["blk.0.ffn_act_freq"], (expect / expect.max()).astype(np.float32))


@pytest.mark.parametrize("damage", ["truncated", "not_zip", "short_storage", "foreign_global", "count_over_tokens",
                                    "gap", "empty_dir"])
def test_bad_input_is_one_clear_error_line(tmp_path, damage):
    d = tmp_path / "activation"
    d.mkdir()
    good = np.array([1, 2, 3, 4], dtype=np.float32)
    write_pt(d / "activation_0.pt", good)
    p = d / "activation_0.pt"
    args = [d, tmp_path / "o.gguf", "--tokens", 10]
    expect = "activation_0.pt"
    if damage == "truncated":
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    elif damage == "not_zip":
        p.write_bytes(b"\x80\x02 this is not a zip file")
    elif damage == "short_storage":
        with zipfile.ZipFile(p, "a") as z:  # a second, shorter storage 0 wins on read: 2 elements for 4
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                z.writestr("archive/data/0", np.zeros(2, np.float32).tobytes())
        expect = "storage '0'"
    elif damage == "foreign_global":
        payload = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("archive/data.pkl", payload)
        expect = "os.system"
    elif damage == "count_over_tokens":
        args = [d, tmp_path / "o.gguf", "--tokens", 3]
        expect = "more than --tokens 3"
    elif damage == "gap":
        write_pt(d / "activation_2.pt", good)
        expect = "activation_1.pt"
    elif damage == "empty_dir":
        p.unlink()
        expect = "no activation_<layer>.pt"
    r = run_tool(*args)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and expect in r.stderr, r.stderr
    assert not (tmp_path / "o.gguf").exists()
