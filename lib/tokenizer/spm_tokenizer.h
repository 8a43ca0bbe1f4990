// The SentencePiece-style tokenizer of LLaMA vocabularies ("llama"), as llama.cpp's SPM tokenizer behaves:
//   - spaces become U+2581, and one U+2581 is prepended when add_space_prefix (never to empty text);
//   - the text is split into characters, then the adjacent pair whose concatenation is a vocabulary piece with the
//     highest score is merged, repeatedly (ties: the leftmost pair); control, unknown, unused and byte pieces are
//     never formed by merging, so text like "<s>" stays literal as in SentencePiece;
//   - a character that is no piece becomes its UTF-8 bytes as <0xNN> tokens, or one unk token when the vocabulary
//     has no byte tokens.
#pragma once

#include <memory>

#include "tokenizer/tokenizer.h"

namespace pi {

// Throws PI_ERR_FORMAT when characters outside the vocabulary could not be encoded at all (no <0xNN> tokens for
// every byte and no unknown token).
std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocabulary vocab);

}  // namespace pi
