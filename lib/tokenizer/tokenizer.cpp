#include "tokenizer/tokenizer.h"

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"

namespace pi {

std::unique_ptr<Tokenizer> Tokenizer::create(Vocabulary vocab) {
    vocab.validate();
    if (vocab.model == "llama") return make_spm_tokenizer(std::move(vocab));
    return make_bpe_tokenizer(std::move(vocab));  // validate() admits only llama and gpt2
}

}  // namespace pi
