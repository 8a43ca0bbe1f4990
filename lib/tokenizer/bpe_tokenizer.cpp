#include "tokenizer/bpe_tokenizer.h"

#include <array>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "tokenizer/bpe_pretokenizer.h"
#include "tokenizer/unicode.h"

namespace pi {
namespace {

// Bytes that GPT-2 keeps as their own Latin-1 code point: the printable ones.
bool is_printable_byte(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); }

struct ByteMap {
    std::array<uint32_t, 256> to_symbol{};
    std::array<int16_t, 256 + 68> to_byte{};  // symbols are < U+0144
    ByteMap() {
        to_byte.fill(-1);
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            to_symbol[b] = is_printable_byte(b) ? static_cast<uint32_t>(b) : next++;
            to_byte[to_symbol[b]] = static_cast<int16_t>(b);
        }
    }
};

const ByteMap &byte_map() {
    static const ByteMap map;
    return map;
}

class BpeTokenizer final : public Tokenizer {
public:
    BpeTokenizer(const BpeTokenizer &) = delete;
    BpeTokenizer &operator=(const BpeTokenizer &) = delete;

    explicit BpeTokenizer(Vocabulary vocab) : Tokenizer(std::move(vocab)) {
        pre_ = vocab_.pre == "falcon" ? PreTokenizer::Falcon : PreTokenizer::Gpt2;
        std::unordered_map<std::string_view, Token> ids;
        ids.reserve(vocab_.tokens.size() * 2);
        for (size_t i = 0; i < vocab_.tokens.size(); ++i) ids.emplace(vocab_.tokens[i], static_cast<Token>(i));

        // Real vocabularies lack the symbols of bytes their training text never had (Falcon: C0, C1, F5..FF,
        // F2 and some control characters). Such bytes become unk, or are dropped when there is no unk token, as
        // Hugging Face's BPE does.
        for (int b = 0; b < 256; ++b) {
            std::string symbol;
            unicode::append_utf8(symbol, byte_to_symbol(static_cast<uint8_t>(b)));
            const auto it = ids.find(symbol);
            byte_ids_[b] = it != ids.end() ? it->second : vocab_.unk;
        }

        merges_.reserve(vocab_.merges.size() * 2);
        std::string joined;
        for (size_t rank = 0; rank < vocab_.merges.size(); ++rank) {
            const std::string &line = vocab_.merges[rank];
            const size_t space = line.find(' ');  // validate() guarantees one, with text on both sides
            const std::string_view left(line.data(), space);
            const std::string_view right(line.data() + space + 1, line.size() - space - 1);
            joined.assign(left).append(right);
            const auto l = ids.find(left), r = ids.find(right), m = ids.find(joined);
            if (l == ids.end() || r == ids.end() || m == ids.end()) continue;
            // emplace keeps the first (best) rank of a pair listed twice.
            merges_.emplace(pair_key(l->second, r->second), Merge{static_cast<int32_t>(rank), m->second});
        }
    }

    std::vector<Token> encode(std::string_view text, bool add_bos) const override {
        std::vector<Token> out;
        if (add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
        std::vector<Symbol> symbols;  // reused across words
        for (const Word &word : pretokenize(text, pre_)) {
            merge_word(text.substr(word.begin, word.end - word.begin), symbols, out);
        }
        return out;
    }

    std::string piece(Token token) const override {
        if (token < 0 || static_cast<size_t>(token) >= n_vocab()) {
            fail(PI_ERR_INVALID_ARGUMENT,
                 "token " + std::to_string(token) + " is out of range [0, " + std::to_string(n_vocab()) + ")");
        }
        if (token == vocab_.bos || token == vocab_.eos) return "";
        const int32_t type = vocab_.type_of(token);
        if (type == token_type::kControl || type == token_type::kUnused) return "";
        const std::string &text = vocab_.tokens[static_cast<size_t>(token)];
        // Added (user-defined) tokens are stored as plain text, not as byte symbols.
        if (type == token_type::kUserDefined) return text;
        std::string out;
        out.reserve(text.size());
        for (size_t pos = 0; pos < text.size();) {
            const unicode::Utf8Unit unit = unicode::decode_utf8(text, pos);
            const int b = unit.cp == unicode::kInvalid ? -1 : symbol_to_byte(unit.cp);
            if (b >= 0) out += static_cast<char>(b);
            else out.append(text, pos, unit.len);  // not a byte symbol: keep it as written
            pos += unit.len;
        }
        return out;
    }

private:
    struct Merge {
        int32_t rank;
        Token merged;
    };
    struct Symbol {
        Token id;
        int prev;
        int next;
    };
    struct Candidate {
        int32_t rank;
        int left;
        int right;
        Token left_id;   // ids when queued: ids only change by merging, so a mismatch means the entry is stale
        Token right_id;
        bool operator<(const Candidate &o) const {
            // std::priority_queue pops the largest: lowest rank, then the leftmost pair.
            return rank > o.rank || (rank == o.rank && left > o.left);
        }
    };

    static uint64_t pair_key(Token a, Token b) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }

    void merge_word(std::string_view word, std::vector<Symbol> &symbols, std::vector<Token> &out) const {
        symbols.clear();
        for (char c : word) {
            const Token id = byte_ids_[static_cast<uint8_t>(c)];
            if (id < 0) continue;  // a byte without a symbol token: dropped, its neighbours become adjacent
            const int index = static_cast<int>(symbols.size());
            symbols.push_back({id, index - 1, index + 1});
        }
        if (symbols.empty()) return;
        symbols.back().next = -1;
        if (symbols.size() == 1) {
            out.push_back(symbols[0].id);
            return;
        }

        std::priority_queue<Candidate> queue;
        const auto try_add = [&](int left, int right) {
            if (left < 0 || right < 0) return;
            const auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
            if (it == merges_.end()) return;
            queue.push({it->second.rank, left, right, symbols[left].id, symbols[right].id});
        };
        for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

        while (!queue.empty()) {
            const Candidate top = queue.top();
            queue.pop();
            Symbol &left = symbols[top.left];
            if (left.next != top.right || left.id != top.left_id || symbols[top.right].id != top.right_id) continue;
            Symbol &right = symbols[top.right];
            left.id = merges_.at(pair_key(top.left_id, top.right_id)).merged;
            left.next = right.next;
            if (right.next >= 0) symbols[right.next].prev = top.left;
            right.id = -1;
            right.next = -1;  // a dead symbol is never anyone's left side again
            try_add(left.prev, top.left);
            try_add(top.left, left.next);
        }
        for (int i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
    }

    PreTokenizer pre_ = PreTokenizer::Gpt2;
    std::array<Token, 256> byte_ids_{};
    std::unordered_map<uint64_t, Merge> merges_;
};

}  // namespace

uint32_t byte_to_symbol(uint8_t byte) { return byte_map().to_symbol[byte]; }

int symbol_to_byte(uint32_t cp) { return cp < byte_map().to_byte.size() ? byte_map().to_byte[cp] : -1; }

std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocabulary vocab) {
    return std::make_unique<BpeTokenizer>(std::move(vocab));
}

}  // namespace pi
