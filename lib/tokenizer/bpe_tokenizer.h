// Byte-level BPE ("gpt2"), as used by GPT-2 and Falcon: text is split into words (bpe_pretokenizer.h), each word's
// bytes become GPT-2's byte symbols (printable Latin-1 bytes stand for themselves, the other 68 bytes for U+0100..
// U+0143 in byte order), then the adjacent pair with the lowest merge rank (its index in tokenizer.ggml.merges) is
// merged, repeatedly (ties: the leftmost pair), and the final symbols are vocabulary tokens.
#pragma once

#include <memory>

#include "tokenizer/tokenizer.h"

namespace pi {

// A byte whose symbol is no token becomes the unknown token, or is dropped when there is none (as in Hugging Face's
// BPE; Falcon's vocabulary has no symbol for C0, C1, F2, F5..FF and 14 control characters, and no unk). Merges
// whose parts or result are not vocabulary tokens can never apply and are ignored.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocabulary vocab);

// GPT-2's byte -> symbol code point mapping, and its inverse (-1 for code points that are no byte symbol).
uint32_t byte_to_symbol(uint8_t byte);
int symbol_to_byte(uint32_t cp);

}  // namespace pi
