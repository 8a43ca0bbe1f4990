#!/usr/bin/env python3
"""Converts PowerInfer's activation statistics into a libpowerinfer activation profile.

  import_powerinfer_activation.py ACTIVATION_DIR OUT.gguf [--tokens N] [--arch llama]

PowerInfer writes ACTIVATION_DIR/activation_{i}.pt: for layer i a 1-D torch tensor of per-neuron activation counts.
The output is our profile format (lib/sparse/profile_file.h, DESIGN.md section 6): a GGUF file with one F32 tensor
`blk.N.ffn_act_freq` per layer (counts / tokens profiled, in [0, 1]), the key `powerinfer.profile.tokens` (UINT64)
and `general.architecture`.

Without --tokens the number of profiled tokens is unknown: each layer is divided by its largest count (relative
frequencies, the hottest neuron at 1), powerinfer.profile.tokens is 0, and a warning says so.

Torch is not needed: a .pt file (torch's zip format) is a zip holding `<name>/data.pkl`, a pickle that rebuilds the
tensor with torch._utils._rebuild_tensor_v2 from storages stored raw in `<name>/data/<key>`. A restricted unpickler
maps exactly those few names to numpy and refuses everything else, so a file cannot run code.
"""
from __future__ import annotations

import argparse
import collections
import os
import pickle
import re
import sys
import zipfile

import gguf
import numpy as np

TOKENS_KEY = "powerinfer.profile.tokens"


class ProfileError(Exception):
    """A bad input file or argument; main() prints it as one line, without a traceback."""


# torch storage class name -> numpy dtype of its elements (BFloat16 is widened to float32 after reading).
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(np.uint16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}


class _StorageType:
    """Stands for torch.<Name>Storage in the pickle: only its element type matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    def __init__(self, kind: _StorageType, data: np.ndarray):
        self.kind = kind
        self.data = data


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor_v2 (and the older _rebuild_tensor) for numpy: a strided view, bounds-checked."""
    if not isinstance(storage, _Storage):
        raise ProfileError("tensor does not refer to a storage")
    try:
        offset = int(storage_offset)
        size = tuple(int(s) for s in size)
        stride = tuple(int(s) for s in stride)
    except (TypeError, ValueError) as e:
        raise ProfileError(f"bad tensor geometry: {e}") from None
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise ProfileError(f"bad tensor geometry: offset {offset}, size {size}, stride {stride}")
    data = storage.data
    if all(s > 0 for s in size):
        last = offset + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= data.size:
            raise ProfileError(f"tensor reaches element {last} of a storage of {data.size}")
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(data[offset:], shape=size, strides=[st * item for st in stride])
    else:
        view = np.zeros(size, dtype=data.dtype)
    out = np.array(view, copy=True)
    if storage.kind.name == "BFloat16Storage":  # bf16 is the top half of an f32
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, byteorder: str):
        super().__init__(file)
        self.archive = archive
        self.prefix = prefix
        self.byteorder = byteorder

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":  # the (empty) backward hooks
            return collections.OrderedDict
        raise ProfileError(f"data.pkl refers to {module}.{name}, which an activation tensor does not use")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, number of elements)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and
                isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise ProfileError(f"unsupported persistent id in data.pkl: {pid!r}")
        kind, key, numel = pid[1], pid[2], pid[4]
        try:
            raw = self.archive.read(f"{self.prefix}data/{key}")
        except KeyError:
            raise ProfileError(f"storage {key!r} is missing from the archive") from None
        dtype = kind.dtype.newbyteorder("<" if self.byteorder == "little" else ">")
        if numel < 0 or len(raw) < numel * dtype.itemsize:
            raise ProfileError(f"storage {key!r} holds {len(raw)} bytes, {numel} elements of {dtype.itemsize} "
                               f"bytes expected")
        return _Storage(kind, np.frombuffer(raw, dtype=dtype, count=numel).astype(kind.dtype))


def read_pt_tensor(path: str) -> np.ndarray:
    """The tensor saved in a torch zip-format file, as a numpy array. ProfileError on anything unexpected."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise ProfileError("not a torch zip file (no single data.pkl in the archive)")
            prefix = pickles[0][: -len("data.pkl")]
            byteorder = "little"
            if f"{prefix}byteorder" in archive.namelist():
                byteorder = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
                if byteorder not in ("little", "big"):
                    raise ProfileError(f"unknown byteorder {byteorder!r}")
            with archive.open(pickles[0]) as f:
                obj = _Unpickler(f, archive, prefix, byteorder).load()
    except ProfileError as e:
        raise ProfileError(f"{path}: {e}") from None
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, pickle.UnpicklingError, ValueError, TypeError,
            IndexError, KeyError, AttributeError, OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"{path}: corrupt or truncated torch file ({type(e).__name__}: {e})") from None
    if not isinstance(obj, np.ndarray):
        raise ProfileError(f"{path}: holds a {type(obj).__name__}, not a tensor")
    return obj


def layer_files(directory: str) -> list[str]:
    """activation_0.pt .. activation_{n-1}.pt; a gap in the numbering is an error."""
    if not os.path.isdir(directory):
        raise ProfileError(f"{directory}: not a directory")
    found = {}
    for name in os.listdir(directory):
        m = re.fullmatch(r"activation_(\d+)\.pt", name)
        if m:
            found[int(m.group(1))] = os.path.join(directory, name)
    if not found:
        raise ProfileError(f"{directory}: no activation_<layer>.pt files")
    missing = [i for i in range(max(found) + 1) if i not in found]
    if missing:
        raise ProfileError(f"{directory}: layer files missing: activation_{missing[0]}.pt"
                           + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    return [found[i] for i in range(len(found))]


def to_frequencies(counts: np.ndarray, tokens: int | None, where: str) -> np.ndarray:
    if counts.ndim != 1 or counts.size == 0:
        raise ProfileError(f"{where}: expected a non-empty 1-D tensor of counts, got shape {counts.shape}")
    c = counts.astype(np.float64)
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ProfileError(f"{where}: counts must be finite and >= 0")
    if tokens is None:
        top = c.max()
        return (c / top if top > 0 else c).astype(np.float32)
    if c.max() > tokens:
        raise ProfileError(f"{where}: a neuron fired {c.max():.0f} times, more than --tokens {tokens}")
    return (c / tokens).astype(np.float32)


def convert(directory: str, out: str, tokens: int | None, arch: str) -> int:
    """Writes the profile; returns the number of layers."""
    freqs = [to_frequencies(read_pt_tensor(p), tokens, p) for p in layer_files(directory)]
    writer = gguf.GGUFWriter(out, arch)
    writer.add_uint64(TOKENS_KEY, tokens or 0)
    for i, f in enumerate(freqs):
        writer.add_tensor(f"blk.{i}.ffn_act_freq", f)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return len(freqs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("activation_dir", help="PowerInfer's activation folder (activation_<layer>.pt files)")
    ap.add_argument("out", help="the profile to write (GGUF)")
    ap.add_argument("--tokens", type=int, help="number of tokens the counts were collected over")
    ap.add_argument("--arch", default="llama", help="general.architecture of the model (default llama)")
    args = ap.parse_args(argv)
    if args.tokens is not None and args.tokens <= 0:
        print("error: --tokens must be > 0", file=sys.stderr)
        return 2
    if args.tokens is None:
        print("warning: --tokens not given: each layer's counts are divided by its largest count, so the "
              f"frequencies are relative (the hottest neuron at 1) and {TOKENS_KEY} is 0", file=sys.stderr)
    try:
        n = convert(args.activation_dir, args.out, args.tokens, args.arch)
    except ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {n} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
