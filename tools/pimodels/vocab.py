"""Real tokenizer vocabularies, transplanted from a vocab-only GGUF file into a test model (optionally truncated).

Truncation to the first n tokens (docs/MODEL_FILES.md, "Vocabulary"):
  - per-token arrays (tokens, scores, token_type) keep their first n entries;
  - a special token (any `tokenizer.ggml.*_token_id`) whose id is >= n is moved into the kept range: specials
    beyond the cut take the highest kept ids that are not themselves specials (n-1, n-2, ...), in increasing
    order of their original ids; the ordinary tokens they displace are dropped; the id keys are rewritten;
  - BPE merges survive only if both parts and their concatenation are kept tokens (order is preserved);
  - every other tokenizer key (model, pre, add_bos_token, ...) is copied unchanged.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from gguf import GGUFReader, GGUFValueType

PER_TOKEN_KEYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type")
MERGES_KEY = "tokenizer.ggml.merges"


@dataclass(frozen=True)
class Field:
    key: str
    value: object            # scalar, str, or list
    vtype: GGUFValueType
    sub_type: GGUFValueType | None = None


@dataclass(frozen=True)
class Vocab:
    fields: tuple[Field, ...]  # the tokenizer.* entries in file order

    def get(self, key: str):
        for f in self.fields:
            if f.key == key:
                return f.value
        return None

    @property
    def n_tokens(self) -> int:
        return len(self.get("tokenizer.ggml.tokens"))

    def special_ids(self) -> dict[str, int]:
        return {f.key: int(f.value) for f in self.fields if f.key.endswith("_token_id")}


@functools.lru_cache(maxsize=4)
def read_vocab(path: str) -> Vocab:
    """All `tokenizer.*` keys of a GGUF file (cached: the same vocab serves many models in one process)."""
    reader = GGUFReader(path)
    fields = []
    for key, f in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = GGUFValueType(f.types[0])
        sub = GGUFValueType(f.types[-1]) if vtype == GGUFValueType.ARRAY else None
        value = f.contents()
        fields.append(Field(key, value, vtype, sub))
    vocab = Vocab(tuple(fields))
    if vocab.get("tokenizer.ggml.tokens") is None:
        raise ValueError(f"{path}: no tokenizer.ggml.tokens")
    return vocab


def truncate(vocab: Vocab, n_keep: int) -> Vocab:
    """The first n_keep tokens of vocab, with special tokens kept valid (see the module docstring)."""
    n = vocab.n_tokens
    if n_keep >= n:
        return vocab
    specials = vocab.special_ids()
    beyond = sorted({i for i in specials.values() if i >= n_keep})
    inside = {i for i in specials.values() if i < n_keep}
    free_slots = [i for i in range(n_keep - 1, -1, -1) if i not in inside]
    if len(beyond) > len(free_slots):
        raise ValueError(f"cannot keep {len(inside) + len(beyond)} special tokens in {n_keep} ids")
    # new id -> old id for every kept slot
    source = list(range(n_keep))
    remap = {}
    for old, slot in zip(beyond, free_slots):
        source[slot] = old
        remap[old] = slot

    fields = []
    tokens = vocab.get("tokenizer.ggml.tokens")
    kept_tokens = {tokens[i] for i in source}
    for f in vocab.fields:
        value = f.value
        if f.key in PER_TOKEN_KEYS:
            if len(value) != n:
                raise ValueError(f"{f.key} has {len(value)} entries, expected {n}")
            value = [value[i] for i in source]
        elif f.key == MERGES_KEY:
            value = [m for m in value if _merge_kept(m, kept_tokens)]
        elif f.key.endswith("_token_id"):
            value = remap.get(int(value), int(value))
        fields.append(Field(f.key, value, f.vtype, f.sub_type))
    return Vocab(tuple(fields))


def _merge_kept(merge: str, kept: set[str]) -> bool:
    parts = merge.split(" ")
    return len(parts) == 2 and parts[0] in kept and parts[1] in kept and parts[0] + parts[1] in kept


def add_to_writer(writer, vocab: Vocab) -> None:
    for f in vocab.fields:
        if f.vtype == GGUFValueType.ARRAY and len(f.value) == 0:
            continue  # GGUF cannot store an empty array; an absent key means the same
        writer.add_key_value(f.key, f.value, f.vtype, f.sub_type)
