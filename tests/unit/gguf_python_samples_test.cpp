// Files written by the `gguf` Python package (tests/data/gguf/make_samples.py) read back by our reader. The expected
// values are the script's formulas, restated here.
#include "gguf_test_helpers.h"

using namespace gguf_test;
using pi::gguf::File;
using pi::gguf::OpenOptions;
using pi::gguf::TensorInfo;
using pi::gguf::TensorType;
using pi::gguf::Value;
using pi::gguf::ValueType;

namespace {

const Value &value_of(const File &f, const std::string &key) {
    const Value *v = f.find(key);
    INFO("key " << key);
    REQUIRE(v != nullptr);
    return *v;
}

void check_scalar_u(const File &f, const std::string &key, ValueType type, uint64_t expected) {
    const Value &v = value_of(f, key);
    INFO("key " << key);
    CHECK(v.type == type);
    CHECK(v.u == expected);
}

void check_scalar_i(const File &f, const std::string &key, ValueType type, int64_t expected) {
    const Value &v = value_of(f, key);
    INFO("key " << key);
    CHECK(v.type == type);
    CHECK(v.i == expected);
}

const Value &check_array(const File &f, const std::string &key, ValueType elem, size_t count) {
    const Value &v = value_of(f, key);
    INFO("key " << key);
    REQUIRE(v.type == ValueType::ARRAY);
    CHECK(v.elem_type == elem);
    REQUIRE(v.items.size() == count);
    for (const Value &item : v.items) CHECK(item.type == elem);
    return v;
}

const TensorInfo &tensor_of(const File &f, const std::string &name, TensorType type, std::vector<uint64_t> dims,
                            uint64_t n_bytes) {
    const TensorInfo *t = f.find_tensor(name);
    INFO("tensor " << name);
    REQUIRE(t != nullptr);
    CHECK(t->type == type);
    CHECK(t->dims == dims);
    CHECK(t->n_bytes == n_bytes);
    CHECK(t->offset % f.alignment() == 0);
    return *t;
}

void check_all_types_v3(const File &f, bool pwri = false) {
    CHECK(f.version() == 3);
    CHECK(f.is_pwri() == pwri);
    CHECK(f.alignment() == 32);
    CHECK(f.data_offset() % 32 == 0);

    // File order: the package writes general.architecture first, then ours in the order added.
    const auto &md = f.metadata();
    REQUIRE(md.size() == 30);
    CHECK(md[0].first == "general.architecture");
    CHECK(md[1].first == "t.u8");
    CHECK(md[29].first == "t.nested.deep");
    CHECK(f.get_string("general.architecture") == "test");

    check_scalar_u(f, "t.u8", ValueType::UINT8, 200);
    check_scalar_i(f, "t.i8", ValueType::INT8, -100);
    check_scalar_u(f, "t.u16", ValueType::UINT16, 60000);
    check_scalar_i(f, "t.i16", ValueType::INT16, -30000);
    check_scalar_u(f, "t.u32", ValueType::UINT32, 4000000000u);
    check_scalar_i(f, "t.i32", ValueType::INT32, -2000000000);
    check_scalar_u(f, "t.u64", ValueType::UINT64, UINT64_MAX);
    check_scalar_i(f, "t.i64", ValueType::INT64, INT64_MIN);
    check_scalar_u(f, "t.bool_true", ValueType::BOOL, 1);
    check_scalar_u(f, "t.bool_false", ValueType::BOOL, 0);
    CHECK(value_of(f, "t.f32").type == ValueType::FLOAT32);
    CHECK(value_of(f, "t.f32").f == 0.15625);
    CHECK(value_of(f, "t.f64").type == ValueType::FLOAT64);
    CHECK(value_of(f, "t.f64").f == 3.141592653589793);
    CHECK(value_of(f, "t.string").type == ValueType::STRING);
    CHECK(value_of(f, "t.string").str == "h\xc3\xa9llo \xe2\x9c\x93");
    CHECK(value_of(f, "t.empty_string").type == ValueType::STRING);
    CHECK(value_of(f, "t.empty_string").str.empty());

    const Value &u8 = check_array(f, "t.arr.u8", ValueType::UINT8, 3);
    CHECK(u8.items[0].u == 0);
    CHECK(u8.items[1].u == 1);
    CHECK(u8.items[2].u == 255);
    const Value &i8 = check_array(f, "t.arr.i8", ValueType::INT8, 3);
    CHECK(i8.items[0].i == -128);
    CHECK(i8.items[1].i == 0);
    CHECK(i8.items[2].i == 127);
    const Value &u16 = check_array(f, "t.arr.u16", ValueType::UINT16, 2);
    CHECK(u16.items[1].u == 65535);
    const Value &i16 = check_array(f, "t.arr.i16", ValueType::INT16, 2);
    CHECK(i16.items[0].i == -32768);
    CHECK(i16.items[1].i == 32767);
    const Value &u32 = check_array(f, "t.arr.u32", ValueType::UINT32, 2);
    CHECK(u32.items[0].u == 1);
    CHECK(u32.items[1].u == 4294967295u);
    const Value &i32 = check_array(f, "t.arr.i32", ValueType::INT32, 3);
    CHECK(i32.items[0].i == INT32_MIN);
    CHECK(i32.items[1].i == INT32_MAX);
    CHECK(i32.items[2].i == 5);
    const Value &f32 = check_array(f, "t.arr.f32", ValueType::FLOAT32, 3);
    CHECK(f32.items[0].f == 0.5);
    CHECK(f32.items[1].f == -2.25);
    CHECK(f32.items[2].f == static_cast<double>(1e-3f));
    const Value &b = check_array(f, "t.arr.bool", ValueType::BOOL, 3);
    CHECK(b.items[0].u == 1);
    CHECK(b.items[1].u == 0);
    CHECK(b.items[2].u == 1);
    check_array(f, "t.arr.string", ValueType::STRING, 3);
    CHECK(*f.get_string_array("t.arr.string") == std::vector<std::string>{"a", "", "\xc3\xbcn\xc3\xaf"});
    const Value &u64 = check_array(f, "t.arr.u64", ValueType::UINT64, 2);
    CHECK(u64.items[0].u == 0);
    CHECK(u64.items[1].u == UINT64_MAX);
    const Value &i64 = check_array(f, "t.arr.i64", ValueType::INT64, 2);
    CHECK(i64.items[0].i == INT64_MIN);
    CHECK(i64.items[1].i == INT64_MAX);
    const Value &f64 = check_array(f, "t.arr.f64", ValueType::FLOAT64, 2);
    CHECK(f64.items[0].f == 1e300);
    CHECK(f64.items[1].f == -0.1);

    // [[1, 2, 3], [4], [5, 6]]
    const Value &ni = check_array(f, "t.nested.int", ValueType::ARRAY, 3);
    const std::vector<std::vector<int64_t>> ni_expected = {{1, 2, 3}, {4}, {5, 6}};
    for (size_t i = 0; i < 3; ++i) {
        REQUIRE(ni.items[i].elem_type == ValueType::INT32);
        REQUIRE(ni.items[i].items.size() == ni_expected[i].size());
        for (size_t j = 0; j < ni_expected[i].size(); ++j) CHECK(ni.items[i].items[j].i == ni_expected[i][j]);
    }
    // [["x", "y"], ["z"]]
    const Value &ns = check_array(f, "t.nested.string", ValueType::ARRAY, 2);
    REQUIRE(ns.items[0].elem_type == ValueType::STRING);
    REQUIRE(ns.items[0].items.size() == 2);
    CHECK(ns.items[0].items[0].str == "x");
    CHECK(ns.items[0].items[1].str == "y");
    REQUIRE(ns.items[1].items.size() == 1);
    CHECK(ns.items[1].items[0].str == "z");
    // [[[1], [2, 3]], [[4]]]
    const Value &nd = check_array(f, "t.nested.deep", ValueType::ARRAY, 2);
    REQUIRE(nd.items[0].elem_type == ValueType::ARRAY);
    REQUIRE(nd.items[0].items.size() == 2);
    REQUIRE(nd.items[0].items[1].elem_type == ValueType::INT32);
    REQUIRE(nd.items[0].items[1].items.size() == 2);
    CHECK(nd.items[0].items[0].items[0].i == 1);
    CHECK(nd.items[0].items[1].items[0].i == 2);
    CHECK(nd.items[0].items[1].items[1].i == 3);
    REQUIRE(nd.items[1].items.size() == 1);
    REQUIRE(nd.items[1].items[0].items.size() == 1);
    CHECK(nd.items[1].items[0].items[0].i == 4);

    // Tensors, in file order, with the script's formulas.
    REQUIRE(f.tensors().size() == 5);
    CHECK(f.tensors()[0].name == "f32");
    CHECK(f.tensors()[4].name == "q4_0");

    const TensorInfo &tf32 = tensor_of(f, "f32", TensorType::F32, {3, 2}, 24);
    CHECK(tf32.n_elements == 6);
    CHECK(tf32.rows() == 2);
    CHECK(tf32.row_elements() == 3);
    for (int i = 0; i < 6; ++i) CHECK(le_f32(f.tensor_data(tf32) + 4 * i) == i * 0.25f - 1);

    const TensorInfo &tf16 = tensor_of(f, "f16", TensorType::F16, {8, 4}, 64);
    for (int i = 0; i < 32; ++i) CHECK(half_to_float(le16(f.tensor_data(tf16) + 2 * i)) == (i - 16) * 0.5f);

    const TensorInfo &tbf16 = tensor_of(f, "bf16", TensorType::BF16, {16, 2}, 64);
    for (int i = 0; i < 32; ++i) CHECK(bf16_to_float(le16(f.tensor_data(tbf16) + 2 * i)) == (i - 10) * 0.125f);

    const TensorInfo &tq8 = tensor_of(f, "q8_0", TensorType::Q8_0, {64, 2}, 4 * 34);
    std::vector<float> q8 = dequantize_q8_0(f.tensor_data(tq8), 128);
    for (int b = 0; b < 4; ++b) {
        for (int j = 0; j < 32; ++j) {
            int k = j == 0 ? -127 : ((j * 8 + b * 3) % 255) - 127;
            INFO("q8_0 block " << b << " element " << j);
            CHECK(q8[b * 32 + j] == std::ldexp(static_cast<float>(k), -(b + 1)));
        }
    }

    const TensorInfo &tq4 = tensor_of(f, "q4_0", TensorType::Q4_0, {64, 1}, 2 * 18);
    std::vector<float> q4 = dequantize_q4_0(f.tensor_data(tq4), 64);
    const float c[2] = {0.25f, 1.5f};
    for (int b = 0; b < 2; ++b) {
        for (int j = 0; j < 32; ++j) {
            int k = j == 3 ? -8 : ((j * 5 + b) % 15) - 7;
            INFO("q4_0 block " << b << " element " << j);
            CHECK(q4[b * 32 + j] == k * c[b]);
        }
    }
}

}  // namespace

TEST_CASE("gguf reads every value type and tensor type written by the Python gguf package", "[gguf]") {
    const std::string path = sample_path("all_types_v3.gguf");
    SECTION("mmap") {
        auto f = File::open(path);
        check_all_types_v3(*f);
    }
    SECTION("read") {
        OpenOptions o;
        o.use_mmap = false;
        auto f = File::open(path, o);
        check_all_types_v3(*f);
    }
    SECTION("memory") {
        Bytes bytes = read_bytes(path);
        auto f = File::from_memory(bytes.data(), bytes.size());
        check_all_types_v3(*f);
        CHECK(f->name() == "<memory>");
    }
}

TEST_CASE("gguf reads a version 2 file with alignment 64 from the Python gguf package", "[gguf]") {
    for (bool mmap : {true, false}) {
        OpenOptions o;
        o.use_mmap = mmap;
        auto f = File::open(sample_path("v2_align64.gguf"), o);
        CHECK(f->version() == 2);
        CHECK(f->alignment() == 64);
        CHECK(f->data_offset() == 320);  // where GGUFReader puts it
        CHECK(f->get_string("general.name") == "v2 sample");
        CHECK(f->get_uint("t.u32") == 7);
        CHECK(f->get_uint("general.alignment") == 64);

        const TensorInfo &a = tensor_of(*f, "a", TensorType::F32, {5}, 20);
        CHECK(a.offset == 0);
        CHECK(a.rows() == 1);
        for (int i = 0; i < 5; ++i) CHECK(le_f32(f->tensor_data(a) + 4 * i) == i + 1.0f);
        const TensorInfo &b = tensor_of(*f, "b", TensorType::F16, {3, 3}, 18);
        CHECK(b.offset == 64);
        for (int i = 0; i < 9; ++i) CHECK(half_to_float(le16(f->tensor_data(b) + 2 * i)) == i * -1.5f);
        const TensorInfo &c = tensor_of(*f, "c", TensorType::Q8_0, {32, 1}, 34);
        CHECK(c.offset == 128);
        std::vector<float> q = dequantize_q8_0(f->tensor_data(c), 32);
        for (int j = 0; j < 32; ++j) {
            int k = j == 0 ? -127 : (j * 8 % 255) - 127;
            CHECK(q[j] == k * 0.5f);
        }
        // Tensor data keep the file's alignment in memory (page-aligned mapping / 64-byte aligned buffer).
        CHECK(reinterpret_cast<uintptr_t>(f->tensor_data(b)) % 64 == 0);
    }
}

TEST_CASE("gguf names unsupported tensor types from the Python gguf package unless allowed", "[gguf]") {
    const std::string path = sample_path("unsupported_types.gguf");
    Outcome o = open_path(path);
    CHECK(o.status == PI_ERR_UNSUPPORTED);
    CHECK_THAT(o.message, Catch::Matchers::Contains("Q4_K") && Catch::Matchers::Contains("'blk.0.ffn_up.weight'") &&
                              Catch::Matchers::Contains(path));

    OpenOptions allow;
    allow.allow_unsupported_types = true;
    auto f = File::open(path, allow);
    const TensorInfo &q4k = tensor_of(*f, "blk.0.ffn_up.weight", TensorType::Q4_K, {256}, 144);
    for (int i = 0; i < 144; ++i) CHECK(f->tensor_data(q4k)[i] == i);
    const TensorInfo &ids = tensor_of(*f, "ids", TensorType::I32, {2, 2}, 16);
    const int32_t expected[4] = {1, -2, 3, -4};
    for (int i = 0; i < 4; ++i) {
        int32_t v;
        std::memcpy(&v, f->tensor_data(ids) + 4 * i, 4);
        CHECK(v == expected[i]);
    }
}

TEST_CASE("gguf reads PowerInfer's PWRI magic with the same layout", "[gguf]") {
    Bytes bytes = read_bytes(sample_path("all_types_v3.gguf"));
    std::memcpy(bytes.data(), "PWRI", 4);
    auto f = File::from_memory(bytes.data(), bytes.size());
    check_all_types_v3(*f, true);
}

TEST_CASE("gguf reads the vocabulary-only files, which end right after their metadata", "[gguf]") {
    for (const char *name : {"ggml-vocab-llama.gguf", "ggml-vocab-falcon.gguf"}) {
        auto f = File::open(std::string(PI_TEST_DATA_DIR) + "/vocab/" + name);
        CHECK(f->tensors().empty());
        CHECK(f->data_offset() >= f->size());
        auto tokens = f->get_string_array("tokenizer.ggml.tokens");
        REQUIRE(tokens.has_value());
        CHECK(tokens->size() > 30000);
    }
}
