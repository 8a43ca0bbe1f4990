// Every way a GGUF file can be wrong gives the right status and a message naming the problem and where it is.
// Broken files are made by writing a valid one with our Writer and patching bytes at known positions.
#include "gguf_test_helpers.h"

#include <sys/stat.h>

using namespace gguf_test;
using namespace pi::gguf;
using Catch::Matchers::Contains;

namespace {

// Header layout: magic [0, 4), version [4, 8), tensor count [8, 16), metadata count [16, 24); the first key's
// length is at 24. For a one-letter first key: its type at 33, its value at 37.
constexpr size_t kVersionPos = 4;
constexpr size_t kTensorCountPos = 8;
constexpr size_t kKvCountPos = 16;
constexpr size_t kFirstKeyPos = 24;
constexpr size_t kFirstTypePos = 33;
constexpr size_t kFirstValuePos = 37;

void expect(const Bytes &bytes, pi_status status, const std::vector<std::string> &parts,
            const OpenOptions &options = {}) {
    Outcome o = parse(bytes, options);
    INFO("message: " << o.message);
    CHECK(o.status == status);
    for (const std::string &part : parts) CHECK_THAT(o.message, Contains(part));
}

Bytes one_value(const Value &v) {
    Writer w;
    w.add("k", v);
    return w.to_bytes();
}

// t0: F32 [8, 2] = 64 bytes at offset 0; t1: Q8_0 [32, 2] = 68 bytes at offset 64.
Bytes two_tensors() {
    Writer w;
    w.add_string("general.architecture", "x");
    std::vector<uint8_t> t0(64, 1), t1(68, 2);
    w.add_tensor("t0", TensorType::F32, {8, 2}, t0.data(), t0.size());
    w.add_tensor("t1", TensorType::Q8_0, {32, 2}, t1.data(), t1.size());
    return w.to_bytes();
}

Value nested(int depth) {
    Value v = make_array(ValueType::UINT8, {make_uint(ValueType::UINT8, 1)});
    for (int d = 1; d < depth; ++d) v = make_array(ValueType::ARRAY, {v});
    return v;
}

}  // namespace

TEST_CASE("gguf rejects a bad magic", "[gguf]") {
    Bytes b = two_tensors();
    std::memcpy(b.data(), "GGUX", 4);
    expect(b, PI_ERR_FORMAT, {"<memory>: not a GGUF file: bad magic 'GGUX'", "expected 'GGUF' or 'PWRI'"});
    expect(Bytes(100, 0), PI_ERR_FORMAT, {"bad magic '\\x00\\x00\\x00\\x00'"});
}

TEST_CASE("gguf rejects versions other than 2 and 3 as unsupported", "[gguf]") {
    Bytes b = two_tensors();
    put_u32(b, kVersionPos, 1);
    expect(b, PI_ERR_UNSUPPORTED, {"GGUF version 1 is not supported"});
    put_u32(b, kVersionPos, 4);
    expect(b, PI_ERR_UNSUPPORTED, {"GGUF version 4 is not supported"});
    put_u32(b, kVersionPos, 0);
    expect(b, PI_ERR_UNSUPPORTED, {"GGUF version 0"});
    put_u32(b, kVersionPos, 0x03000000);
    expect(b, PI_ERR_UNSUPPORTED, {"big-endian"});
}

TEST_CASE("gguf rejects counts the file cannot hold before allocating", "[gguf]") {
    Bytes b = two_tensors();
    Bytes k = b;
    put_u64(k, kKvCountPos, uint64_t(1) << 63);
    expect(k, PI_ERR_FORMAT, {"header: metadata count 9223372036854775808 is impossible"});
    Bytes t = b;
    put_u64(t, kTensorCountPos, uint64_t(1) << 63);
    expect(t, PI_ERR_FORMAT, {"tensor count 9223372036854775808 is impossible"});
    put_u64(t, kTensorCountPos, UINT64_MAX);
    expect(t, PI_ERR_FORMAT, {"tensor count 18446744073709551615 is impossible"});
    // Plausible for the header, impossible once the metadata has been read.
    put_u64(t, kTensorCountPos, 8);
    expect(t, PI_ERR_FORMAT, {"tensor infos: tensor count 8 is impossible"});

    Bytes a = one_value(make_array(ValueType::UINT32, {make_uint32(1), make_uint32(2)}));
    put_u64(a, kFirstValuePos + 4, uint64_t(1) << 62);
    expect(a, PI_ERR_FORMAT, {"metadata 0 ('k'): array of UINT32, count 4611686018427387904 is impossible"});
    put_u64(a, kFirstValuePos + 4, UINT64_MAX);
    expect(a, PI_ERR_FORMAT, {"count 18446744073709551615 is impossible"});

    // A string array needs at least 8 bytes per element, a nested array 12.
    Bytes s = one_value(make_array(ValueType::STRING, {make_string("abc")}));
    put_u64(s, kFirstValuePos + 4, 3);
    expect(s, PI_ERR_FORMAT, {"array of STRING, count 3 is impossible"});
    Bytes n = one_value(make_array(ValueType::ARRAY, {make_array(ValueType::UINT8, {make_uint(ValueType::UINT8, 1)}),
                                                      make_array(ValueType::UINT8, {})}));
    // The second inner array's count, right before the end of the file.
    put_u64(n, n.size() - 8, 1000);
    expect(n, PI_ERR_FORMAT, {"metadata 0 ('k') element [1]: array of UINT8, count 1000 is impossible"});
}

TEST_CASE("gguf rejects string lengths past the end of the file", "[gguf]") {
    Bytes b = one_value(make_string("abc"));
    Bytes key = b;
    put_u64(key, kFirstKeyPos, UINT64_MAX - 3);
    expect(key, PI_ERR_FORMAT,
           {"<memory>: truncated file: metadata 0 key needs 18446744073709551612 bytes at offset 32, file has " +
            std::to_string(b.size())});
    put_u64(b, kFirstValuePos, UINT64_MAX);
    expect(b, PI_ERR_FORMAT, {"truncated file: metadata 0 ('k') string needs 18446744073709551615 bytes"});
    Bytes arr = one_value(make_array(ValueType::STRING, {make_string("abc"), make_string("d")}));
    put_u64(arr, arr.size() - 9, 1u << 20);
    expect(arr, PI_ERR_FORMAT, {"metadata 0 ('k') element [1] string needs 1048576 bytes"});
}

TEST_CASE("gguf rejects unknown value types", "[gguf]") {
    Bytes b = one_value(make_uint32(5));
    put_u32(b, kFirstTypePos, 13);
    expect(b, PI_ERR_FORMAT, {"metadata 0 ('k'): unknown value type 13"});
    put_u32(b, kFirstTypePos, 0x80000000u);
    expect(b, PI_ERR_FORMAT, {"unknown value type 2147483648"});
    Bytes a = one_value(make_array(ValueType::UINT32, {make_uint32(1)}));
    put_u32(a, kFirstValuePos, 99);
    expect(a, PI_ERR_FORMAT, {"metadata 0 ('k'): unknown array element type 99"});
}

TEST_CASE("gguf rejects bool values other than 0 and 1", "[gguf]") {
    Bytes b = one_value(make_bool(true));
    b[kFirstValuePos] = 2;
    expect(b, PI_ERR_FORMAT, {"metadata 0 ('k'): bool value 2", "must be 0 or 1"});
    Bytes a = one_value(make_array(ValueType::BOOL, {make_bool(false), make_bool(true)}));
    a.back() = 0xff;
    expect(a, PI_ERR_FORMAT, {"metadata 0 ('k') element [1]: bool value 255"});
}

TEST_CASE("gguf limits the nesting depth of arrays", "[gguf]") {
    Bytes ok = one_value(nested(kMaxArrayDepth));
    CHECK(parse(ok).status == PI_OK);
    expect(one_value(nested(kMaxArrayDepth + 1)), PI_ERR_FORMAT, {"arrays nested deeper than 8 levels"});

    // A million levels written by hand: must fail at level 9, not run out of stack.
    Bytes deep = one_value(make_array(ValueType::ARRAY, {}));
    deep.resize(kFirstValuePos);
    for (int i = 0; i < 1000000; ++i) {
        deep.insert(deep.end(), {9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0});  // ARRAY of ARRAY, count 1
    }
    expect(deep, PI_ERR_FORMAT, {"element [0][0][0][0][0][0][0][0]: arrays nested deeper than 8 levels"});
}

TEST_CASE("gguf limits the number of metadata values", "[gguf]") {
    Writer w;
    w.add_uint32("a", 1);
    w.add("b", make_array(ValueType::UINT8, std::vector<Value>(5, make_uint(ValueType::UINT8, 3))));
    Bytes b = w.to_bytes();
    OpenOptions o;
    o.max_metadata_values = 7;  // 1 + the array + its 5 elements
    CHECK(parse(b, o).status == PI_OK);
    o.max_metadata_values = 6;
    expect(b, PI_ERR_FORMAT, {"metadata 1 ('b') element [4]: more than 6 metadata values"}, o);
    CHECK(OpenOptions().max_metadata_values == kMaxMetadataValues);
}

TEST_CASE("gguf rejects duplicate keys and tensor names", "[gguf]") {
    Writer w;
    w.add_uint32("k", 1);
    w.add_string("other", "x");
    w.add_uint32("k", 2);
    expect(w.to_bytes(), PI_ERR_FORMAT, {"duplicate metadata key 'k' (entries 0 and 2)"});

    Writer t;
    float x[2] = {1, 2};
    t.add_tensor("w", TensorType::F32, {2}, x, sizeof x);
    t.add_tensor("w", TensorType::F32, {2}, x, sizeof x);
    expect(t.to_bytes(), PI_ERR_FORMAT, {"duplicate tensor name 'w' (tensor infos 0 and 1)"});
}

TEST_CASE("gguf checks general.alignment", "[gguf]") {
    auto with_alignment = [](const Value &v) {
        Writer w;
        w.add("general.alignment", v);
        float x[2] = {1, 2};
        w.add_tensor("w", TensorType::F32, {2}, x, sizeof x);
        return w.to_bytes();
    };
    expect(with_alignment(make_uint32(0)), PI_ERR_FORMAT,
           {"general.alignment is 0, expected a non-zero power of two"});
    expect(with_alignment(make_uint32(48)), PI_ERR_FORMAT, {"general.alignment is 48"});
    expect(with_alignment(make_uint(ValueType::UINT64, 32)), PI_ERR_FORMAT,
           {"general.alignment has type UINT64, expected UINT32"});
    expect(with_alignment(make_string("32")), PI_ERR_FORMAT, {"general.alignment has type STRING"});
    Outcome o = parse(with_alignment(make_uint32(32)));
    CHECK(o.status == PI_OK);
}

TEST_CASE("gguf checks tensor dimensions", "[gguf]") {
    const Bytes base = two_tensors();
    REQUIRE(parse(base).status == PI_OK);
    TensorInfoPos p0 = tensor_info_pos(base, "t0", 2);

    Bytes b = base;
    put_u32(b, p0.n_dims, 5);
    expect(b, PI_ERR_FORMAT, {"tensor info 0 ('t0'): n_dims 5 is outside 1..4", "GGML_MAX_DIMS"});
    put_u32(b, p0.n_dims, 0);
    expect(b, PI_ERR_FORMAT, {"tensor info 0 ('t0'): n_dims 0 is outside 1..4"});

    b = base;
    put_u64(b, p0.dims + 8, 0);
    expect(b, PI_ERR_FORMAT, {"tensor info 0 ('t0'): dimension 1 is 0"});

    b = base;
    put_u64(b, p0.dims, uint64_t(1) << 32);
    put_u64(b, p0.dims + 8, uint64_t(1) << 32);
    expect(b, PI_ERR_FORMAT, {"tensor info 0 ('t0'): dimensions 4294967296 x 4294967296 overflow"});

    // 2^62 F32 elements fit 64 bits, their 2^64 bytes do not.
    b = base;
    put_u64(b, p0.dims, uint64_t(1) << 62);
    put_u64(b, p0.dims + 8, 1);
    expect(b, PI_ERR_FORMAT, {"tensor info 0 ('t0'): byte size of 4611686018427387904 x 1 F32 overflows"});

    // Large but representable: the data cannot be in the file.
    b = base;
    put_u64(b, p0.dims, uint64_t(1) << 40);
    expect(b, PI_ERR_FORMAT, {"tensor 't0'", "extends past the end of the file"});

    TensorInfoPos p1 = tensor_info_pos(base, "t1", 2);
    b = base;
    put_u64(b, p1.dims, 48);
    expect(b, PI_ERR_FORMAT, {"tensor info 1 ('t1'): row length 48 is not a multiple of the Q8_0 block size 32"});
}

TEST_CASE("gguf rejects empty tensor names", "[gguf]") {
    Writer w;
    float x[1] = {1};
    w.add_tensor("", TensorType::F32, {1}, x, sizeof x);
    expect(w.to_bytes(), PI_ERR_FORMAT, {"tensor info 0: empty tensor name"});
}

TEST_CASE("gguf rejects unknown tensor types and names unsupported ones", "[gguf]") {
    const Bytes base = two_tensors();
    TensorInfoPos p1 = tensor_info_pos(base, "t1", 2);
    Bytes b = base;
    put_u32(b, p1.type, 99);
    expect(b, PI_ERR_FORMAT, {"tensor info 1 ('t1'): unknown tensor type id 99"});
    put_u32(b, p1.type, 31);  // retired by ggml (Q4_0_4_4)
    expect(b, PI_ERR_FORMAT, {"unknown tensor type id 31"});
    OpenOptions allow;
    allow.allow_unsupported_types = true;
    expect(b, PI_ERR_FORMAT, {"unknown tensor type id 31"}, allow);

    Writer w;
    std::vector<uint8_t> q4k(2 * 144, 7);
    w.add_tensor("blk.0.attn_q.weight", TensorType::Q4_K, {512}, q4k.data(), q4k.size());
    Bytes k = w.to_bytes();
    expect(k, PI_ERR_UNSUPPORTED, {"tensor 'blk.0.attn_q.weight' has type Q4_K, which is not supported"});
    Outcome o = parse(k, allow);
    CHECK(o.status == PI_OK);
    auto f = File::from_memory(k.data(), k.size(), allow);
    CHECK(f->tensors()[0].n_bytes == 288);

    // Block sizes of unsupported types still take part in the bounds checks.
    put_u64(k, tensor_info_pos(k, "blk.0.attn_q.weight", 1).dims, 768);
    expect(k, PI_ERR_FORMAT, {"extends past the end of the file"}, allow);
    put_u64(k, tensor_info_pos(k, "blk.0.attn_q.weight", 1).dims, 300);
    expect(k, PI_ERR_FORMAT, {"row length 300 is not a multiple of the Q4_K block size 256"}, allow);

    Bytes f64 = base;
    put_u32(f64, p1.type, static_cast<uint32_t>(TensorType::F64));
    expect(f64, PI_ERR_UNSUPPORTED, {"tensor 't1' has type F64"});
}

TEST_CASE("gguf checks tensor data offsets", "[gguf]") {
    const Bytes base = two_tensors();
    TensorInfoPos p1 = tensor_info_pos(base, "t1", 2);
    REQUIRE(get_u64(base, p1.offset) == 64);

    Bytes b = base;
    put_u64(b, p1.offset, 65);
    expect(b, PI_ERR_FORMAT, {"tensor info 1 ('t1'): data offset 65 is not a multiple of the alignment 32"});

    put_u64(b, p1.offset, uint64_t(1) << 40);
    expect(b, PI_ERR_FORMAT, {"tensor 't1': data at offset 1099511627776 of the data section", "extends past the end of the file"});
    put_u64(b, p1.offset, UINT64_MAX - 31);  // aligned, and offset + size overflows
    expect(b, PI_ERR_FORMAT, {"tensor 't1'", "extends past the end of the file"});
    put_u64(b, p1.offset, 128);  // 68 bytes + padding to 96 from 128 > the 160 bytes of data
    expect(b, PI_ERR_FORMAT, {"tensor 't1'", "extends past the end of the file"});

    put_u64(b, p1.offset, 32);
    expect(b, PI_ERR_FORMAT, {"tensors 't0' (data [0, 64)) and 't1' (data [32, 100)) overlap"});
    put_u64(b, p1.offset, 0);
    expect(b, PI_ERR_FORMAT, {"overlap"});

    // The last tensor's padding is part of the file (ggml reads it too).
    Bytes cut = base;
    cut.pop_back();
    expect(cut, PI_ERR_FORMAT, {"tensor 't1'", "extends past the end of the file"});
}

TEST_CASE("gguf reports truncation in the header and before the data section", "[gguf]") {
    expect(Bytes(), PI_ERR_FORMAT, {"truncated file: header magic needs 4 bytes at offset 0, file has 0"});
    Bytes b = two_tensors();
    expect(Bytes(b.begin(), b.begin() + 10), PI_ERR_FORMAT,
           {"truncated file: header tensor count needs 8 bytes at offset 8, file has 10"});
    TensorInfoPos p1 = tensor_info_pos(b, "t1", 2);
    expect(Bytes(b.begin(), b.begin() + static_cast<long>(p1.offset) + 3), PI_ERR_FORMAT,
           {"truncated file: tensor info 1 ('t1') data offset needs 8 bytes at offset " + std::to_string(p1.offset)});
    Bytes pad(b.begin(), b.begin() + static_cast<long>(p1.offset) + 8);
    expect(pad, PI_ERR_FORMAT, {"truncated file: data section padding needs"});
    Outcome none = parse(Bytes());
    CHECK(none.status == PI_ERR_FORMAT);
    CHECK_THROWS_AS(File::from_memory(nullptr, 0), pi::Error);
}

TEST_CASE("gguf open reports I/O errors and names the path", "[gguf]") {
    for (bool mmap : {true, false}) {
        OpenOptions o;
        o.use_mmap = mmap;
        Outcome missing = open_path("/nonexistent/dir/model.gguf", o);
        CHECK(missing.status == PI_ERR_IO);
        CHECK_THAT(missing.message, Contains("/nonexistent/dir/model.gguf") && Contains("No such file or directory"));

        TempDir dir;
        Outcome d = open_path(dir.path(), o);
        CHECK(d.status == PI_ERR_IO);
        CHECK_THAT(d.message, Contains("not a regular file"));
    }
}

TEST_CASE("gguf open reports corrupt files through mmap and read()", "[gguf]") {
    TempDir dir;
    Bytes b = read_bytes(sample_path("all_types_v3.gguf"));
    std::string empty = dir.write("empty.gguf", Bytes());
    std::string half = dir.write("half.gguf", Bytes(b.begin(), b.begin() + static_cast<long>(b.size() / 2)));
    Bytes bad = b;
    bad[0] = 'X';
    std::string magic = dir.write("magic.gguf", bad);
    for (bool mmap : {true, false}) {
        OpenOptions o;
        o.use_mmap = mmap;
        Outcome e = open_path(empty, o);
        CHECK(e.status == PI_ERR_FORMAT);
        CHECK_THAT(e.message, Contains(empty + ": truncated file: header magic"));
        Outcome h = open_path(half, o);
        CHECK(h.status == PI_ERR_FORMAT);
        CHECK_THAT(h.message, Contains(half + ": "));  // truncated inside an array: "count ... is impossible"
        Outcome m = open_path(magic, o);
        CHECK(m.status == PI_ERR_FORMAT);
        CHECK_THAT(m.message, Contains(magic + ": not a GGUF file"));
    }
}

TEST_CASE("gguf tensor_data refuses a tensor of another file", "[gguf]") {
    Bytes b = two_tensors();
    auto f = File::from_memory(b.data(), b.size());
    TensorInfo foreign = f->tensors()[1];
    foreign.offset = 1 << 20;
    try {
        f->tensor_data(foreign);
        FAIL("no error");
    } catch (const pi::Error &e) {
        CHECK(e.status() == PI_ERR_INVALID_ARGUMENT);
    }
}
