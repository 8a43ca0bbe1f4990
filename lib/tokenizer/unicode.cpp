#include "tokenizer/unicode.h"

#include <algorithm>
#include <iterator>

namespace pi::unicode {
namespace {

const uint32_t kClassTable[] = {
#include "tokenizer/unicode_classes.inc"
};

// Sequence length announced by a lead byte; 0 for bytes that cannot start a sequence (continuation bytes, the
// overlong leads C0/C1, and F5..FF beyond U+10FFFF).
uint32_t sequence_length(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0;
}

// The allowed range of the byte after a lead: narrower than 80..BF for the leads that could otherwise encode
// overlong forms (E0, F0), surrogates (ED) or values above U+10FFFF (F4).
bool second_byte_ok(uint8_t lead, uint8_t b) {
    switch (lead) {
        case 0xE0: return b >= 0xA0 && b <= 0xBF;
        case 0xED: return b >= 0x80 && b <= 0x9F;
        case 0xF0: return b >= 0x90 && b <= 0xBF;
        case 0xF4: return b >= 0x80 && b <= 0x8F;
        default: return b >= 0x80 && b <= 0xBF;
    }
}

}  // namespace

CharClass char_class(uint32_t cp) {
    if (cp > 0x10FFFF) return CharClass::Other;
    // The last entry whose first code point is <= cp. Entry 0 starts at U+0000, so there always is one.
    const uint32_t key = (cp << 3) | 7u;
    const uint32_t *it = std::upper_bound(std::begin(kClassTable), std::end(kClassTable), key);
    return static_cast<CharClass>(*(it - 1) & 7u);
}

Utf8Unit decode_utf8(std::string_view text, size_t pos) {
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
    const uint8_t lead = byte(pos);
    const uint32_t n = sequence_length(lead);
    if (n == 1) return {lead, 1};
    if (n == 0) return {kInvalid, 1};
    uint32_t cp = lead & (0x7Fu >> n);
    for (uint32_t k = 1; k < n; ++k) {
        if (pos + k >= text.size()) return {kInvalid, k};
        const uint8_t b = byte(pos + k);
        const bool ok = k == 1 ? second_byte_ok(lead, b) : (b >= 0x80 && b <= 0xBF);
        if (!ok) return {kInvalid, k};
        cp = (cp << 6) | (b & 0x3Fu);
    }
    return {cp, n};
}

size_t incomplete_tail(std::string_view text) {
    // The last lead byte lies at most 3 bytes from the end of an incomplete sequence.
    const size_t size = text.size();
    for (size_t back = 1; back <= 3 && back <= size; ++back) {
        const size_t start = size - back;
        const uint8_t b = static_cast<uint8_t>(text[start]);
        if (b >= 0x80 && b <= 0xBF) continue;  // continuation byte: keep looking for the lead
        const uint32_t n = sequence_length(b);
        if (n <= back) return 0;  // complete (or not a lead at all)
        const Utf8Unit unit = decode_utf8(text, start);
        return unit.len == back ? back : 0;  // every byte so far was valid: wait for the rest
    }
    return 0;
}

void append_utf8(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

}  // namespace pi::unicode
