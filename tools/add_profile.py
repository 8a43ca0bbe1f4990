#!/usr/bin/env python3
"""Copies an activation profile into a model file, so that the placement planner finds it there (DESIGN §6).

usage: add_profile.py MODEL.gguf PROFILE.gguf OUT.gguf

PROFILE is what the library writes (pi_session_save_profile; powerinfer-cli --profile-out) or what
tools/import_powerinfer_activation.py converts: per layer an F32 tensor blk.N.ffn_act_freq of n_ff frequencies in
[0, 1]. OUT gets every key and tensor of MODEL unchanged, the profile's tensors (replacing any the model had) and the
key powerinfer.profile.tokens. Tensors are copied one at a time from the mapped input, so a 7B model needs little
memory. Errors (missing layers, wrong sizes, values outside [0, 1]) are reported in one line, without a traceback.
"""
import argparse
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

HEADER_KEYS = {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count", "general.architecture"}


class ProfileError(Exception):
    pass


def read_profile(path: str, n_layer: int, n_ff: int) -> tuple[dict[str, np.ndarray], int]:
    reader = GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    out = {}
    for il in range(n_layer):
        name = f"blk.{il}.ffn_act_freq"
        t = tensors.get(name)
        if t is None:
            raise ProfileError(f"{path}: no tensor {name} (the model has {n_layer} layers)")
        if t.tensor_type != GGMLQuantizationType.F32 or t.data.size != n_ff:
            raise ProfileError(f"{path}: {name} must be F32 with {n_ff} values (the model's n_ff), "
                               f"it is {t.tensor_type.name} with {t.data.size}")
        freq = np.asarray(t.data, dtype=np.float32).reshape(n_ff)
        if not np.all((freq >= 0) & (freq <= 1)):
            raise ProfileError(f"{path}: {name} holds values outside [0, 1]")
        out[name] = freq
    field = reader.fields.get("powerinfer.profile.tokens")
    tokens = int(field.contents()) if field is not None else 0
    return out, tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("profile")
    ap.add_argument("out")
    args = ap.parse_args()
    try:
        model = GGUFReader(args.model)
        arch = model.fields["general.architecture"].contents()
        n_layer = int(model.fields[f"{arch}.block_count"].contents())
        n_ff = int(model.fields[f"{arch}.feed_forward_length"].contents())
        profile, tokens = read_profile(args.profile, n_layer, n_ff)
    except ProfileError as e:
        print(f"add_profile: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"add_profile: cannot read the inputs: {e}", file=sys.stderr)
        return 1

    tmp = args.out + ".tmp"
    w = GGUFWriter(tmp, arch)
    for key, f in model.fields.items():
        if key in HEADER_KEYS or key == "powerinfer.profile.tokens":
            continue
        vtype = GGUFValueType(f.types[0])
        sub = GGUFValueType(f.types[-1]) if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(key, f.contents(), vtype, sub)
    w.add_key_value("powerinfer.profile.tokens", tokens, GGUFValueType.UINT64)
    kept = [t for t in model.tensors if t.name not in profile]
    for t in kept:
        w.add_tensor_info(t.name, t.data.shape, t.data.dtype, int(t.n_bytes), raw_dtype=t.tensor_type)
    for name, freq in profile.items():
        w.add_tensor_info(name, freq.shape, freq.dtype, freq.nbytes, raw_dtype=GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for t in kept:
        w.write_tensor_data(t.data)
    for freq in profile.values():
        w.write_tensor_data(freq)
    w.close()
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(kept)} model tensors + {len(profile)} profile tensors ({tokens} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
