#include "model/hparams.h"

#include <cmath>
#include <limits>

#include "common/error.h"

namespace pi {
namespace {

constexpr uint64_t kMaxDim = 1u << 20;  // generous bound on any single dimension; rejects garbage early

uint32_t read_dim(const gguf::File &file, const std::string &key, uint64_t fallback, bool required) {
    const uint64_t value = required ? file.get_uint(key) : file.get_uint_or(key, fallback);
    if (value == 0 || value > kMaxDim) {
        fail(PI_ERR_FORMAT, "metadata '" + key + "' = " + std::to_string(value) + " is out of range [1, " +
                                std::to_string(kMaxDim) + "]");
    }
    return static_cast<uint32_t>(value);
}

FfnActivation parse_activation(const std::string &name) {
    if (name == "silu") return FfnActivation::Silu;
    if (name == "reglu" || name == "relu_glu") return FfnActivation::Reglu;
    if (name == "drelu") return FfnActivation::Drelu;
    if (name == "relu") return FfnActivation::Relu;
    fail(PI_ERR_UNSUPPORTED, "metadata 'powerinfer.ffn_activation' = '" + name +
                                 "' is not one of silu, reglu, drelu, relu");
}

}  // namespace

const char *activation_name(FfnActivation activation) {
    switch (activation) {
        case FfnActivation::Silu: return "silu";
        case FfnActivation::Reglu: return "reglu";
        case FfnActivation::Drelu: return "drelu";
        case FfnActivation::Relu: return "relu";
    }
    return "unknown";
}

bool activation_is_relu_family(FfnActivation activation) { return activation != FfnActivation::Silu; }

HParams HParams::from_gguf(const gguf::File &file) {
    HParams hp;
    hp.arch_name = file.get_string("general.architecture");
    const std::string &a = hp.arch_name;
    if (a == "llama") {
        hp.arch = Arch::Llama;
    } else if (a == "bamboo") {
        hp.arch = Arch::Bamboo;
    } else if (a == "falcon") {
        hp.arch = Arch::Falcon;
    } else if (a == "opt") {
        hp.arch = Arch::Opt;
    } else {
        fail(PI_ERR_UNSUPPORTED, "architecture '" + a + "' is not supported (llama, bamboo, falcon, opt)");
    }

    hp.n_ctx_train = read_dim(file, a + ".context_length", 2048, false);
    hp.n_embd = read_dim(file, a + ".embedding_length", 0, true);
    hp.n_layer = read_dim(file, a + ".block_count", 0, true);
    hp.n_ff = read_dim(file, a + ".feed_forward_length", 0, true);
    hp.n_head = read_dim(file, a + ".attention.head_count", 0, true);
    hp.n_head_kv = read_dim(file, a + ".attention.head_count_kv", hp.n_head, false);
    if (hp.n_embd % hp.n_head != 0) {
        fail(PI_ERR_FORMAT, "embedding length " + std::to_string(hp.n_embd) + " is not a multiple of the head count " +
                                std::to_string(hp.n_head));
    }
    if (hp.n_head % hp.n_head_kv != 0) {
        fail(PI_ERR_FORMAT, "head count " + std::to_string(hp.n_head) + " is not a multiple of the KV head count " +
                                std::to_string(hp.n_head_kv));
    }
    hp.head_dim = hp.n_embd / hp.n_head;

    const bool rms = hp.arch == Arch::Llama || hp.arch == Arch::Bamboo;
    const std::string eps_key = a + (rms ? ".attention.layer_norm_rms_epsilon" : ".attention.layer_norm_epsilon");
    const double eps = file.get_float_or(eps_key, rms ? 1e-6 : 1e-5);
    if (!(eps > 0.0 && eps < 1.0)) fail(PI_ERR_FORMAT, "metadata '" + eps_key + "' is not in (0, 1)");
    hp.norm_eps = static_cast<float>(eps);

    hp.rope_mode = hp.arch == Arch::Opt ? RopeMode::None : hp.arch == Arch::Falcon ? RopeMode::Neox : RopeMode::Normal;
    if (hp.rope_mode != RopeMode::None) {
        hp.rope_dim = read_dim(file, a + ".rope.dimension_count", hp.head_dim, false);
        if (hp.rope_dim > hp.head_dim || hp.rope_dim % 2 != 0) {
            fail(PI_ERR_FORMAT, "metadata '" + a + ".rope.dimension_count' = " + std::to_string(hp.rope_dim) +
                                    " must be even and at most the head dimension " + std::to_string(hp.head_dim));
        }
        const double base = file.get_float_or(a + ".rope.freq_base", 10000.0);
        if (!(base > 1.0 && std::isfinite(base))) fail(PI_ERR_FORMAT, "metadata '" + a + ".rope.freq_base' must be > 1");
        hp.rope_freq_base = static_cast<float>(base);
    }

    // Which FFN: our files say so; otherwise DESIGN §5's rule (decided by the caller once tensors are known).
    if (file.find("powerinfer.ffn_activation")) {
        hp.activation = parse_activation(file.get_string("powerinfer.ffn_activation"));
        hp.activation_from_file = true;
    } else {
        hp.activation = hp.arch == Arch::Bamboo ? FfnActivation::Drelu
                        : (hp.arch == Arch::Falcon || hp.arch == Arch::Opt) ? FfnActivation::Relu
                                                                              : FfnActivation::Silu;
    }
    const double threshold = file.get_float_or("powerinfer.sparse_threshold", 0.0);
    if (std::isnan(threshold)) fail(PI_ERR_FORMAT, "metadata 'powerinfer.sparse_threshold' is NaN");
    hp.sparse_threshold = static_cast<float>(threshold);
    return hp;
}

}  // namespace pi
