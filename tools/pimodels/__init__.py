"""libpowerinfer's test-model tools: random models of every supported architecture with planted activation
sparsity, written as GGUF with the `gguf` package. See docs/MODEL_FILES.md; the CLI is tools/make_test_model.py."""
