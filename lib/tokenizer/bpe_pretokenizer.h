// Pre-tokenization for byte-level BPE: splitting text into the words that BPE merges never cross.
//
// Gpt2 follows the GPT-2 regex
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// implemented by hand (case-sensitive contractions; " ?" is U+0020 only; \s is the White_Space property).
//
// Falcon follows the pre-tokenizer sequence of Falcon's tokenizer.json (Hugging Face tokenizers):
//   1. Punctuation, contiguous: runs of punctuation (\p{P} or ASCII punctuation, which adds $+<=>^`|~) become
//      words of their own, so "y'all" is y ' all (no contractions survive) and " (" is " " "(".
//   2. the GPT-2 regex above on each piece;
//   3. Digits, contiguous: runs of numeric characters are split from the rest. Hugging Face applies this after
//      the byte-level mapping, so it sees the byte symbols: the bytes whose symbols are numeric are 0-9 and
//      B2 B3 B9 BC BD BE (the symbols ² ³ ¹ ¼ ½ ¾). That also splits UTF-8 continuation bytes out of letters
//      ("ü" = C3 BC gives "Ã" "¼"), which is what the real Falcon tokenizer does;
//   4. Split on [0-9][0-9][0-9], isolated: digit runs are cut into groups of three from the left.
// llama.cpp's falcon regexes approximate steps 1, 2 and 4; step 3 on byte symbols is what reproduces the
// published encodings of non-Latin text.
//
// Character classes come from unicode.h (Unicode 14; unassigned code points take their neighbour's class).
// Invalid UTF-8 bytes are single "other" characters, so any byte string splits into words that cover it.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace pi {

enum class PreTokenizer { Gpt2, Falcon };

struct Word {
    size_t begin;  // byte offsets into the text: [begin, end)
    size_t end;
};

// The words of `text` in order; they cover every byte exactly once.
std::vector<Word> pretokenize(std::string_view text, PreTokenizer kind);

}  // namespace pi
