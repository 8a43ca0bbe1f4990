#include "sparse/profile_file.h"

#include <cmath>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"

namespace pi {

namespace {
std::string freq_name(size_t layer) { return "blk." + std::to_string(layer) + ".ffn_act_freq"; }
}  // namespace

void save_activation_profile(const std::string &path, const std::string &arch, const ActivationStats &stats) {
    if (!stats.profiling()) {
        fail(PI_ERR_INVALID_ARGUMENT, "no activation profile: the session was created without profile_activations");
    }
    if (stats.n_layer() == 0 || stats.tokens(0) == 0) {
        fail(PI_ERR_INVALID_ARGUMENT, "no activation profile yet: no token has run the predictors");
    }
    gguf::Writer writer;
    writer.add_string("general.architecture", arch);
    writer.add("powerinfer.profile.tokens", gguf::make_uint(gguf::ValueType::UINT64, stats.tokens(0)));
    for (uint32_t l = 0; l < stats.n_layer(); ++l) {
        const std::vector<uint64_t> &counts = stats.counts(l);
        const double tokens = double(stats.tokens(l));
        std::vector<float> freq(counts.size());
        for (size_t i = 0; i < counts.size(); ++i) freq[i] = tokens > 0 ? float(double(counts[i]) / tokens) : 0.0f;
        writer.add_tensor(freq_name(l), gguf::TensorType::F32, {freq.size()}, freq.data(), freq.size() * sizeof(float));
    }
    writer.write_file(path);
}

ActivationProfile load_activation_profile(const std::string &path, const std::vector<uint32_t> &n_ff) {
    std::unique_ptr<gguf::File> file = gguf::File::open(path);
    ActivationProfile profile;
    profile.tokens = file->get_uint_or("powerinfer.profile.tokens", 0);
    profile.frequency.resize(n_ff.size());
    for (size_t l = 0; l < n_ff.size(); ++l) {
        const gguf::TensorInfo *t = file->find_tensor(freq_name(l));
        if (!t) fail(PI_ERR_FORMAT, path + ": profile has no tensor " + freq_name(l));
        if (t->type != gguf::TensorType::F32 || t->dims.size() != 1 || t->dims[0] != n_ff[l]) {
            fail(PI_ERR_FORMAT, path + ": " + freq_name(l) + " must be F32 with " + std::to_string(n_ff[l]) +
                                    " values (the model's n_ff)");
        }
        const auto *data = reinterpret_cast<const float *>(file->tensor_data(*t));
        profile.frequency[l].assign(data, data + n_ff[l]);
        for (float f : profile.frequency[l]) {
            if (!(f >= 0.0f && f <= 1.0f)) fail(PI_ERR_FORMAT, path + ": " + freq_name(l) + " holds a value outside [0, 1]");
        }
    }
    return profile;
}

}  // namespace pi
