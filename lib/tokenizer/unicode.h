// The little Unicode the tokenizers need: strict UTF-8 decoding and a coarse general-category lookup.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pi::unicode {

// Coarse classes as the GPT-2 style pre-tokenizer regexes see them: \p{L}, \p{N}, \p{P}, \s, anything else.
enum class CharClass : uint8_t { Other = 0, Letter = 1, Number = 2, Punct = 3, Space = 4 };

// Class of a code point (Unicode 14 tables, see gen_unicode_classes.py). Limits: unassigned code points take the
// class of the preceding assigned one; values above U+10FFFF are Other.
CharClass char_class(uint32_t cp);

// One decoded unit of a byte string.
struct Utf8Unit {
    uint32_t cp;    // the code point, or kInvalid
    uint32_t len;   // bytes consumed (>= 1 while bytes remain)
};
constexpr uint32_t kInvalid = 0xFFFFFFFFu;

// Decodes the character at `pos` (pos < text.size()). A well-formed sequence (no overlong forms, no surrogates,
// <= U+10FFFF) gives its code point. Otherwise the unit is the maximal ill-formed subpart (Unicode's "maximal
// subpart" rule: the lead byte and the continuation bytes that were still valid) with cp = kInvalid; a valid but
// truncated sequence at the end of `text` is reported the same way.
Utf8Unit decode_utf8(std::string_view text, size_t pos);

// Number of bytes at the end of `text` that form a valid but incomplete sequence (0..3): the part a streaming
// decoder must hold back.
size_t incomplete_tail(std::string_view text);

// Appends the UTF-8 encoding of a code point (cp <= 0x10FFFF).
void append_utf8(std::string &out, uint32_t cp);

}  // namespace pi::unicode
