// The byte-level GGUF parser behind gguf::File: turns a buffer into metadata and tensor infos, checking every count,
// size and offset against the buffer. Internal to lib/gguf.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gguf/gguf_file.h"

namespace pi::gguf {

struct ParsedGguf {
    uint32_t version = 0;
    bool is_pwri = false;
    uint64_t alignment = 32;
    uint64_t data_offset = 0;
    std::vector<std::pair<std::string, Value>> metadata;
    std::vector<TensorInfo> tensors;
};

// Throws pi::Error: PI_ERR_FORMAT (corrupt, truncated, limits above), PI_ERR_UNSUPPORTED (version, tensor type unless
// allowed). Messages start with `name`. Duplicate keys and tensor names are left to the caller (it indexes them).
ParsedGguf parse_gguf(const uint8_t *bytes, uint64_t size, const std::string &name, const OpenOptions &options);

// A name from the file, fit for a message: quoted, non-printable bytes as \xNN, cut after 64 bytes.
std::string quote_for_message(std::string_view text);

}  // namespace pi::gguf
