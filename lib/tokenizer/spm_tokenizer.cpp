#include "tokenizer/spm_tokenizer.h"

#include <array>
#include <cstdio>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "tokenizer/unicode.h"

namespace pi {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space
// SentencePiece's surface for the unknown piece (" ⁇ ", U+2047 with spaces).
constexpr std::string_view kUnknownSurface = " \xE2\x81\x87 ";

bool mergeable(int32_t type) {
    return type == token_type::kNormal || type == token_type::kUserDefined || type == token_type::kUndefined;
}

// Parses "<0xNN>"; -1 when the text is not of that form.
int parse_byte_piece(const std::string &text) {
    if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
    int value = 0;
    for (size_t i = 3; i < 5; ++i) {
        const char c = text[i];
        int digit;
        if (c >= '0' && c <= '9') digit = c - '0';
        else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
        else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
        else return -1;
        value = value * 16 + digit;
    }
    return value;
}

class SpmTokenizer final : public Tokenizer {
public:
    SpmTokenizer(const SpmTokenizer &) = delete;  // ids_ points into vocab_
    SpmTokenizer &operator=(const SpmTokenizer &) = delete;

    explicit SpmTokenizer(Vocabulary vocab) : Tokenizer(std::move(vocab)) {
        const std::vector<std::string> &tokens = vocab_.tokens;
        ids_.reserve(tokens.size() * 2);
        // The first id wins when a piece repeats, so the lookup does not depend on hash order.
        for (size_t i = 0; i < tokens.size(); ++i) ids_.emplace(tokens[i], static_cast<Token>(i));
        byte_ids_.fill(-1);
        bool all_bytes = true;
        for (int b = 0; b < 256; ++b) {
            char name[8];
            std::snprintf(name, sizeof name, "<0x%02X>", b);
            const auto it = ids_.find(name);
            if (it != ids_.end()) byte_ids_[static_cast<size_t>(b)] = it->second;
            else all_bytes = false;
        }
        if (!all_bytes && vocab_.unk < 0) {
            fail(PI_ERR_FORMAT,
                 "metadata 'tokenizer.ggml.tokens' lacks some byte tokens <0x00>..<0xFF> and "
                 "'tokenizer.ggml.unknown_token_id' is missing: text outside the vocabulary could not be encoded");
        }
    }

    std::vector<Token> encode(std::string_view text, bool add_bos) const override {
        std::vector<Token> out;
        if (add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
        if (text.empty()) return out;

        std::string escaped;
        escaped.reserve(text.size() * 3 + kSpaceMark.size());
        if (vocab_.add_space_prefix) escaped += kSpaceMark;
        for (char c : text) {
            if (c == ' ') escaped += kSpaceMark;
            else escaped += c;
        }
        merge(escaped, out);
        return out;
    }

    std::string piece(Token token) const override {
        if (token < 0 || static_cast<size_t>(token) >= n_vocab()) {
            fail(PI_ERR_INVALID_ARGUMENT,
                 "token " + std::to_string(token) + " is out of range [0, " + std::to_string(n_vocab()) + ")");
        }
        if (token == vocab_.bos || token == vocab_.eos) return "";
        const std::string &text = vocab_.tokens[static_cast<size_t>(token)];
        switch (vocab_.type_of(token)) {
            case token_type::kControl:
            case token_type::kUnused: return "";
            case token_type::kUnknown: return std::string(kUnknownSurface);
            case token_type::kByte: {
                const int b = parse_byte_piece(text);
                if (b >= 0) return std::string(1, static_cast<char>(b));
                break;  // a byte token not named <0xNN>: show its text
            }
            default: break;
        }
        std::string out;
        out.reserve(text.size());
        for (size_t i = 0; i < text.size();) {
            if (text.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
                out += ' ';
                i += kSpaceMark.size();
            } else {
                out += text[i++];
            }
        }
        return out;
    }

private:
    // A run of the escaped text; symbols form a doubly linked list as neighbours merge.
    struct Symbol {
        size_t offset;
        size_t len;  // 0 once merged into its left neighbour
        int prev;
        int next;
    };
    struct Bigram {
        float score;
        int left;
        size_t len;  // len of the merged text when queued: a mismatch later means the entry is stale
        bool operator<(const Bigram &o) const {
            // std::priority_queue pops the largest: highest score, then the leftmost pair.
            return score < o.score || (score == o.score && left > o.left);
        }
    };

    // Id of a piece that merges may form; -1 when there is none.
    Token mergeable_id(std::string_view text) const {
        const auto it = ids_.find(text);
        if (it == ids_.end() || !mergeable(vocab_.type_of(it->second))) return -1;
        return it->second;
    }

    void merge(const std::string &text, std::vector<Token> &out) const {
        std::vector<Symbol> symbols;
        symbols.reserve(text.size());
        for (size_t pos = 0; pos < text.size();) {
            const unicode::Utf8Unit unit = unicode::decode_utf8(text, pos);
            // An ill-formed subpart is split into single bytes: none of them is a piece, each becomes <0xNN>.
            const size_t len = unit.cp == unicode::kInvalid ? 1 : unit.len;
            const int index = static_cast<int>(symbols.size());
            symbols.push_back({pos, len, index - 1, index + 1});
            pos += len;
        }
        symbols.back().next = -1;

        std::priority_queue<Bigram> queue;
        const auto try_add = [&](int left, int right) {
            if (left < 0 || right < 0) return;
            const size_t len = symbols[left].len + symbols[right].len;
            const Token id = mergeable_id(std::string_view(text).substr(symbols[left].offset, len));
            if (id < 0) return;
            queue.push({vocab_.scores[static_cast<size_t>(id)], left, len});
        };
        for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

        while (!queue.empty()) {
            const Bigram top = queue.top();
            queue.pop();
            Symbol &left = symbols[top.left];
            if (left.len == 0 || left.next < 0) continue;
            Symbol &right = symbols[left.next];
            if (left.len + right.len != top.len) continue;  // one side changed since this pair was queued
            left.len += right.len;
            right.len = 0;
            left.next = right.next;
            if (right.next >= 0) symbols[right.next].prev = top.left;
            try_add(left.prev, top.left);
            try_add(top.left, left.next);
        }

        for (int i = 0; i >= 0; i = symbols[i].next) {
            const std::string_view piece = std::string_view(text).substr(symbols[i].offset, symbols[i].len);
            const Token id = mergeable_id(piece);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
            // Byte fallback. Without byte tokens the whole character becomes one unk (SentencePiece's choice).
            bool bytes_ok = true;
            for (char c : piece) bytes_ok = bytes_ok && byte_ids_[static_cast<uint8_t>(c)] >= 0;
            if (!bytes_ok) {
                out.push_back(vocab_.unk);
                continue;
            }
            for (char c : piece) out.push_back(byte_ids_[static_cast<uint8_t>(c)]);
        }
    }

    std::unordered_map<std::string_view, Token> ids_;  // views into vocab_.tokens, which never changes
    std::array<Token, 256> byte_ids_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocabulary vocab) {
    return std::make_unique<SpmTokenizer>(std::move(vocab));
}

}  // namespace pi
