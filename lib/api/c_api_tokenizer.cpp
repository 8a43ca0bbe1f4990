// pi_tokenize, pi_token_to_piece, the special tokens and the incremental detokenizer.
#include <cstring>
#include <string>

#include "api/guard.h"
#include "api/handles.h"

using pi::api::guarded;
using pi::api::require;

namespace {

// The buffer rule: copy when it fits, else report the needed size with PI_ERR_BUFFER_TOO_SMALL.
template <typename T>
void deliver(const T *data, size_t count, T *out, size_t capacity, size_t *n_out, const char *function) {
    if (count > capacity) {
        *n_out = count;
        pi::fail(PI_ERR_BUFFER_TOO_SMALL, std::string(function) + ": needs room for " + std::to_string(count) +
                                              ", capacity is " + std::to_string(capacity));
    }
    if (count) std::memcpy(out, data, count * sizeof(T));
    *n_out = count;
}

void check_buffer(const void *out, size_t capacity, const size_t *n_out, const char *function) {
    require(n_out != nullptr, function, "n_out is NULL");
    require(out != nullptr || capacity == 0, function, "the output buffer is NULL but capacity is not 0");
}

}  // namespace

extern "C" {

PI_API pi_status pi_tokenize(const pi_model *model, const char *text, size_t len, int add_bos, pi_token *out,
                             size_t capacity, size_t *n_out) {
    return guarded([&] {
        require(model != nullptr, "pi_tokenize", "model is NULL");
        require(text != nullptr || len == 0, "pi_tokenize", "text is NULL but len is not 0");
        check_buffer(out, capacity, n_out, "pi_tokenize");
        const std::vector<pi::Token> tokens =
            model->model->tokenizer().encode(std::string_view(text ? text : "", len), add_bos != 0);
        deliver(tokens.data(), tokens.size(), out, capacity, n_out, "pi_tokenize");
    });
}

PI_API pi_status pi_token_to_piece(const pi_model *model, pi_token token, char *buf, size_t capacity,
                                   size_t *n_out) {
    return guarded([&] {
        require(model != nullptr, "pi_token_to_piece", "model is NULL");
        check_buffer(buf, capacity, n_out, "pi_token_to_piece");
        const std::string piece = model->model->tokenizer().piece(token);
        deliver(piece.data(), piece.size(), buf, capacity, n_out, "pi_token_to_piece");
    });
}

PI_API pi_token pi_token_bos(const pi_model *model) { return model ? model->model->tokenizer().bos() : -1; }
PI_API pi_token pi_token_eos(const pi_model *model) { return model ? model->model->tokenizer().eos() : -1; }

PI_API pi_status pi_detokenizer_create(const pi_model *model, pi_detokenizer **out) {
    return guarded([&] {
        require(model != nullptr, "pi_detokenizer_create", "model is NULL");
        require(out != nullptr, "pi_detokenizer_create", "out is NULL");
        auto detok = std::make_unique<pi_detokenizer>();
        detok->model = model->model.get();
        *out = detok.release();
    });
}

PI_API void pi_detokenizer_free(pi_detokenizer *detok) { delete detok; }

PI_API pi_status pi_detokenizer_push(pi_detokenizer *detok, pi_token token, char *buf, size_t capacity,
                                     size_t *n_out) {
    return guarded([&] {
        require(detok != nullptr, "pi_detokenizer_push", "detok is NULL");
        check_buffer(buf, capacity, n_out, "pi_detokenizer_push");
        const std::string piece = detok->model->tokenizer().piece(token);
        // Try on a copy so that a too-small buffer leaves the stream as it was (the token is not consumed).
        pi::Utf8Stream trial = detok->stream;
        const std::string text = trial.push(piece);
        deliver(text.data(), text.size(), buf, capacity, n_out, "pi_detokenizer_push");
        detok->stream = std::move(trial);
    });
}

}  // extern "C"
