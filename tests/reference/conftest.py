"""Shared fixtures: the test-model matrix (from the build's models dir, or written here into a temp dir)."""
import os
import sys

# Small matrices: OpenBLAS threads only fight over the shared cores. Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools"))

import functools  # noqa: E402

import pytest  # noqa: E402

import reference  # noqa: E402
from pimodels import models, presets  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes minutes (ctest label slow)")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """PI_MODELS_DIR (the pi_models build target's output) when it holds the whole matrix, else a fresh copy."""
    given = os.environ.get("PI_MODELS_DIR")
    names = presets.matrix_files()
    if given and all(os.path.exists(os.path.join(given, n)) for n in names):
        return given
    out = str(tmp_path_factory.mktemp("models"))
    models.write_matrix(out)
    return out


@pytest.fixture(scope="session")
def load(models_dir):
    """load(name) -> reference.Model for a matrix file (e.g. 'relu-llama-f16'); parsed once per session."""
    @functools.lru_cache(maxsize=None)
    def _parsed(name):
        from gguf import GGUFReader
        reader = GGUFReader(os.path.join(models_dir, name + ".gguf"))
        return reference.read_metadata(reader), reference.read_tensors(reader)

    def _load(name):
        meta, tensors = _parsed(name)
        return reference.Model(meta, tensors)  # a fresh KV cache each time
    return _load
