#include "tokenizer/bpe_pretokenizer.h"

#include <cstdint>

#include "tokenizer/unicode.h"

namespace pi {
namespace {

using unicode::CharClass;

// One decoded character of the text.
struct Char {
    uint32_t cp;      // code point, or unicode::kInvalid for a byte that is not well-formed UTF-8
    size_t offset;    // byte offset in the text
    CharClass cls;
};

std::vector<Char> decode(std::string_view text) {
    std::vector<Char> chars;
    chars.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        const unicode::Utf8Unit unit = unicode::decode_utf8(text, pos);
        // An ill-formed subpart becomes one "other" character per byte, so no byte is swallowed by a neighbour.
        if (unit.cp == unicode::kInvalid) {
            for (uint32_t k = 0; k < unit.len; ++k) chars.push_back({unicode::kInvalid, pos + k, CharClass::Other});
        } else {
            chars.push_back({unit.cp, pos, unicode::char_class(unit.cp)});
        }
        pos += unit.len;
    }
    return chars;
}

// The three " ?X+" alternatives of the regex group characters this way; whitespace belongs to none of them.
enum class Group { Space, Letter, Number, Other };

Group group_of(CharClass cls) {
    switch (cls) {
        case CharClass::Space: return Group::Space;
        case CharClass::Letter: return Group::Letter;
        case CharClass::Number: return Group::Number;
        default: return Group::Other;  // [^\s\p{L}\p{N}]: punctuation, symbols, marks, invalid bytes
    }
}

bool is_contraction_letter(uint32_t cp) { return cp == 's' || cp == 't' || cp == 'm' || cp == 'd'; }

bool is_contraction_pair(uint32_t a, uint32_t b) {
    return (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l');
}

class Splitter {
public:
    Splitter(std::string_view text, const std::vector<Char> &chars) : text_(text), chars_(chars) {}

    // The GPT-2 regex over chars [first, last); emits through `emit`.
    template <typename Emit>
    void gpt2(size_t first, size_t last, Emit &&emit) const {
        size_t i = first;
        while (i < last) {
            const size_t start = i;
            const uint32_t cp = chars_[i].cp;
            // 's 't 'm 'd and 're 've 'll
            if (cp == '\'' && i + 1 < last) {
                if (is_contraction_letter(chars_[i + 1].cp)) {
                    emit(start, i + 2);
                    i += 2;
                    continue;
                }
                if (i + 2 < last && is_contraction_pair(chars_[i + 1].cp, chars_[i + 2].cp)) {
                    emit(start, i + 3);
                    i += 3;
                    continue;
                }
            }
            // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional U+0020, then a run of one group.
            size_t run = i;
            if (cp == ' ' && i + 1 < last && group_of(chars_[i + 1].cls) != Group::Space) run = i + 1;
            const Group g = group_of(chars_[run].cls);
            if (g != Group::Space) {
                size_t j = run + 1;
                while (j < last && group_of(chars_[j].cls) == g) ++j;
                emit(start, j);
                i = j;
                continue;
            }
            // "\s+(?!\S)" takes a whitespace run except its last character when a non-space follows (that one
            // then prefixes the next word, or stands alone through "\s+" if it is not U+0020).
            size_t j = i + 1;
            while (j < last && chars_[j].cls == CharClass::Space) ++j;
            if (j < last && j - i >= 2) --j;
            emit(start, j);
            i = j;
        }
    }

    // Byte offset of char index `i` (last index maps to the end of the text).
    size_t offset(size_t i) const { return i < chars_.size() ? chars_[i].offset : text_.size(); }

private:
    std::string_view text_;
    const std::vector<Char> &chars_;
};

bool is_punctuation(const Char &c) {
    if (c.cp < 0x80) return (c.cp >= 0x21 && c.cp <= 0x2F) || (c.cp >= 0x3A && c.cp <= 0x40) ||
                            (c.cp >= 0x5B && c.cp <= 0x60) || (c.cp >= 0x7B && c.cp <= 0x7E);
    return c.cls == CharClass::Punct;
}

// Bytes whose GPT-2 byte-level symbols are numeric characters (see the header).
bool is_numeric_byte(uint8_t b) {
    return (b >= '0' && b <= '9') || b == 0xB2 || b == 0xB3 || b == 0xB9 || b == 0xBC || b == 0xBD || b == 0xBE;
}

bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }

// Falcon steps 3 and 4 on one word from the regex.
void split_digits(std::string_view text, Word word, std::vector<Word> &out) {
    size_t i = word.begin;
    while (i < word.end) {
        const bool numeric = is_numeric_byte(static_cast<uint8_t>(text[i]));
        size_t j = i + 1;
        while (j < word.end && is_numeric_byte(static_cast<uint8_t>(text[j])) == numeric) ++j;
        if (!numeric) {
            out.push_back({i, j});
            i = j;
            continue;
        }
        // Isolate each [0-9]{3} match, scanning left to right; what lies between matches stays together.
        size_t pending = i;
        for (size_t k = i; k < j;) {
            if (k + 3 <= j && is_ascii_digit(text[k]) && is_ascii_digit(text[k + 1]) && is_ascii_digit(text[k + 2])) {
                if (pending < k) out.push_back({pending, k});
                out.push_back({k, k + 3});
                k += 3;
                pending = k;
            } else {
                ++k;
            }
        }
        if (pending < j) out.push_back({pending, j});
        i = j;
    }
}

}  // namespace

std::vector<Word> pretokenize(std::string_view text, PreTokenizer kind) {
    std::vector<Word> words;
    if (text.empty()) return words;
    const std::vector<Char> chars = decode(text);
    Splitter splitter(text, chars);
    const auto bytes_of = [&](size_t a, size_t b) { return Word{splitter.offset(a), splitter.offset(b)}; };

    if (kind == PreTokenizer::Gpt2) {
        splitter.gpt2(0, chars.size(), [&](size_t a, size_t b) { words.push_back(bytes_of(a, b)); });
        return words;
    }

    // Falcon: punctuation runs first, then the regex inside each piece, then the digit splits on each word.
    size_t i = 0;
    while (i < chars.size()) {
        const bool punct = is_punctuation(chars[i]);
        size_t j = i + 1;
        while (j < chars.size() && is_punctuation(chars[j]) == punct) ++j;
        splitter.gpt2(i, j, [&](size_t a, size_t b) { split_digits(text, bytes_of(a, b), words); });
        i = j;
    }
    return words;
}

}  // namespace pi
