#include <string>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace pi {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Copies well-formed characters and replaces each maximal ill-formed subpart by one U+FFFD.
void sanitize_into(std::string_view bytes, std::string &out) {
    for (size_t pos = 0; pos < bytes.size();) {
        const unicode::Utf8Unit unit = unicode::decode_utf8(bytes, pos);
        if (unit.cp == unicode::kInvalid) {
            out += kReplacement;
        } else {
            out.append(bytes.data() + pos, unit.len);
        }
        pos += unit.len;
    }
}

}  // namespace

std::string Utf8Stream::push(std::string_view bytes) {
    pending_.append(bytes.data(), bytes.size());
    const size_t hold = unicode::incomplete_tail(pending_);
    std::string out;
    sanitize_into(std::string_view(pending_).substr(0, pending_.size() - hold), out);
    pending_.erase(0, pending_.size() - hold);
    return out;
}

std::string Utf8Stream::flush() {
    // What is held back is a valid prefix of one character, so it is one maximal ill-formed subpart.
    std::string out = pending_.empty() ? std::string() : std::string(kReplacement);
    pending_.clear();
    return out;
}

}  // namespace pi
