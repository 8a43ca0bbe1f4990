// Our Writer read back by our reader, the Writer's argument checks, and a file of our Writer read by the Python gguf
// package (GGUFReader).
#include "gguf_test_helpers.h"

#include <random>

using namespace gguf_test;
using namespace pi::gguf;

namespace {

// Every value type, typed arrays, empty arrays and strings, nested arrays.
Writer value_writer(uint32_t version = 3, bool pwri = false, uint64_t alignment = 32) {
    Writer w(version, pwri, alignment);
    w.add_string("s", "text");
    w.add_string("s.empty", "");
    w.add_uint32("u32", 4000000000u);
    w.add_float32("f32", -0.375f);
    w.add("u8", make_uint(ValueType::UINT8, 255));
    w.add("u16", make_uint(ValueType::UINT16, 65535));
    w.add("u64", make_uint(ValueType::UINT64, UINT64_MAX));
    w.add("i8", make_int(ValueType::INT8, -128));
    w.add("i16", make_int(ValueType::INT16, -32768));
    w.add("i32", make_int(ValueType::INT32, INT32_MIN));
    w.add("i64", make_int(ValueType::INT64, INT64_MIN));
    w.add("f64", make_float64(-1.0e-300));
    w.add("b.true", make_bool(true));
    w.add("b.false", make_bool(false));
    w.add("a.u8", make_array(ValueType::UINT8, {make_uint(ValueType::UINT8, 7), make_uint(ValueType::UINT8, 0)}));
    w.add("a.i64", make_array(ValueType::INT64, {make_int(ValueType::INT64, -5), make_int(ValueType::INT64, 9)}));
    w.add("a.f32", make_array(ValueType::FLOAT32, {make_float32(1.5f), make_float32(-2.0f)}));
    w.add("a.bool", make_array(ValueType::BOOL, {make_bool(false), make_bool(true)}));
    w.add("a.str", make_array(ValueType::STRING, {make_string("x"), make_string(""), make_string("zz")}));
    w.add("a.empty", make_array(ValueType::UINT32, {}));
    w.add("a.nested",
          make_array(ValueType::ARRAY,
                     {make_array(ValueType::STRING, {make_string("p"), make_string("q")}),
                      make_array(ValueType::STRING, {}),
                      make_array(ValueType::STRING, {make_string("r")})}));
    return w;
}

void check_values(const File &f) {
    CHECK(f.get_string("s") == "text");
    CHECK(f.get_string("s.empty").empty());
    CHECK(f.get_uint("u32") == 4000000000u);
    CHECK(f.get_float("f32") == -0.375);
    CHECK(f.find("f32")->type == ValueType::FLOAT32);
    CHECK(f.get_uint("u8") == 255);
    CHECK(f.find("u8")->type == ValueType::UINT8);
    CHECK(f.get_uint("u16") == 65535);
    CHECK(f.get_uint("u64") == UINT64_MAX);
    CHECK(f.get_int_or("i8", 0) == -128);
    CHECK(f.find("i8")->type == ValueType::INT8);
    CHECK(f.get_int_or("i16", 0) == -32768);
    CHECK(f.get_int_or("i32", 0) == INT32_MIN);
    CHECK(f.get_int_or("i64", 0) == INT64_MIN);
    CHECK(f.get_float("f64") == -1.0e-300);
    CHECK(f.find("f64")->type == ValueType::FLOAT64);
    CHECK(f.get_bool_or("b.true", false));
    CHECK_FALSE(f.get_bool_or("b.false", true));
    CHECK(*f.get_int_array("a.u8") == std::vector<int64_t>{7, 0});
    CHECK(f.find("a.u8")->elem_type == ValueType::UINT8);
    CHECK(*f.get_int_array("a.i64") == std::vector<int64_t>{-5, 9});
    CHECK(*f.get_float_array("a.f32") == std::vector<double>{1.5, -2.0});
    const Value *ab = f.find("a.bool");
    REQUIRE(ab != nullptr);
    REQUIRE(ab->items.size() == 2);
    CHECK(ab->items[0].u == 0);
    CHECK(ab->items[1].u == 1);
    CHECK(*f.get_string_array("a.str") == std::vector<std::string>{"x", "", "zz"});
    const Value *empty = f.find("a.empty");
    REQUIRE(empty != nullptr);
    CHECK(empty->elem_type == ValueType::UINT32);
    CHECK(empty->items.empty());
    const Value *nested = f.find("a.nested");
    REQUIRE(nested != nullptr);
    REQUIRE(nested->elem_type == ValueType::ARRAY);
    REQUIRE(nested->items.size() == 3);
    REQUIRE(nested->items[0].items.size() == 2);
    CHECK(nested->items[0].items[1].str == "q");
    CHECK(nested->items[1].elem_type == ValueType::STRING);
    CHECK(nested->items[1].items.empty());
    CHECK(nested->items[2].items[0].str == "r");
}

struct TensorSpec {
    std::string name;
    TensorType type;
    std::vector<uint64_t> dims;
    size_t n_bytes;
    Bytes data;
};

std::vector<TensorSpec> random_tensors() {
    std::mt19937 rng(1234);
    std::vector<TensorSpec> specs = {
        {"t.f32", TensorType::F32, {3, 5}, 60, {}},      {"t.f16", TensorType::F16, {7}, 14, {}},
        {"t.bf16", TensorType::BF16, {2, 2, 2, 2}, 32, {}}, {"t.q8_0", TensorType::Q8_0, {64, 3}, 6 * 34, {}},
        {"t.q4_0", TensorType::Q4_0, {32, 1, 2}, 2 * 18, {}},
    };
    for (TensorSpec &s : specs) {
        for (size_t i = 0; i < s.n_bytes; ++i) s.data.push_back(static_cast<uint8_t>(rng()));
    }
    return specs;
}

void check_tensors(const File &f, const std::vector<TensorSpec> &specs) {
    REQUIRE(f.tensors().size() == specs.size());
    uint64_t expected_offset = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
        const TensorSpec &s = specs[i];
        const TensorInfo &t = f.tensors()[i];
        INFO("tensor " << s.name);
        CHECK(t.name == s.name);
        CHECK(t.type == s.type);
        CHECK(t.dims == s.dims);
        CHECK(t.n_bytes == s.n_bytes);
        CHECK(t.offset == expected_offset);  // in order, each padded to the alignment
        expected_offset += (s.n_bytes + f.alignment() - 1) / f.alignment() * f.alignment();
        CHECK(Bytes(f.tensor_data(t), f.tensor_data(t) + t.n_bytes) == s.data);
        CHECK(f.find_tensor(s.name) == &t);
    }
    CHECK(f.data_offset() % f.alignment() == 0);
    CHECK(f.data_offset() + expected_offset == f.size());
}

}  // namespace

TEST_CASE("gguf writer output reads back identically", "[gguf]") {
    std::vector<TensorSpec> specs = random_tensors();
    for (uint32_t version : {2u, 3u}) {
        for (bool pwri : {false, true}) {
            for (uint64_t alignment : {32u, 1u, 8u, 256u}) {
                INFO("version " << version << " pwri " << pwri << " alignment " << alignment);
                Writer w = value_writer(version, pwri, alignment);
                for (const TensorSpec &s : specs) w.add_tensor(s.name, s.type, s.dims, s.data.data(), s.n_bytes);
                Bytes bytes = w.to_bytes();
                CHECK(std::string(bytes.begin(), bytes.begin() + 4) == (pwri ? "PWRI" : "GGUF"));
                auto f = File::from_memory(bytes.data(), bytes.size());
                CHECK(f->version() == version);
                CHECK(f->is_pwri() == pwri);
                CHECK(f->alignment() == alignment);
                CHECK(f->size() == bytes.size());
                // The writer adds general.alignment only for a non-default alignment.
                CHECK((f->find("general.alignment") != nullptr) == (alignment != 32));
                check_values(*f);
                check_tensors(*f, specs);
            }
        }
    }
}

TEST_CASE("gguf writer files read back through mmap and read(), with aligned tensor data", "[gguf]") {
    std::vector<TensorSpec> specs = random_tensors();
    Writer w = value_writer(3, false, 64);
    for (const TensorSpec &s : specs) w.add_tensor(s.name, s.type, s.dims, s.data.data(), s.n_bytes);
    TempDir dir;
    std::string path = dir.file("w.gguf");
    w.write_file(path);
    for (bool mmap : {true, false}) {
        OpenOptions o;
        o.use_mmap = mmap;
        auto f = File::open(path, o);
        CHECK(f->name() == path);
        check_values(*f);
        check_tensors(*f, specs);
        for (const TensorInfo &t : f->tensors()) CHECK(reinterpret_cast<uintptr_t>(f->tensor_data(t)) % 64 == 0);
    }
}

TEST_CASE("gguf writer without tensors ends after the metadata", "[gguf]") {
    Writer w;
    w.add_string("k", "v");
    Bytes bytes = w.to_bytes();
    CHECK(bytes.size() == 24 + 8 + 1 + 4 + 8 + 1);
    auto f = File::from_memory(bytes.data(), bytes.size());
    CHECK(f->tensors().empty());
    CHECK(f->get_string("k") == "v");
}

TEST_CASE("gguf writer rejects what it cannot write", "[gguf]") {
    auto status_of = [](auto &&fn) {
        try {
            fn();
        } catch (const pi::Error &e) {
            return e.status();
        }
        return PI_OK;
    };
    CHECK(status_of([] { Writer w(1); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([] { Writer w(3, false, 48); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([] { Writer w(3, false, 0); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([] {
              Writer w;
              float x[3] = {};
              w.add_tensor("t", TensorType::F32, {4}, x, sizeof x);
          }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([] {
              Writer w;
              uint8_t x[34] = {};
              w.add_tensor("t", TensorType::Q8_0, {16, 2}, x, sizeof x);  // row of 16 is not a whole block
          }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([] {
              Writer w;
              w.add("k", make_uint(ValueType::UINT8, 256));
              w.to_bytes();
          }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([] {
              Writer w;
              w.add("k", make_int(ValueType::INT16, 40000));
              w.to_bytes();
          }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([] {
              Writer w;
              w.add("k", make_array(ValueType::UINT32, {make_string("no")}));
              w.to_bytes();
          }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([] {
              Writer w;
              w.write_file("/nonexistent-dir/x.gguf");
          }) == PI_ERR_IO);
}

#if PI_PYTHON_OK  // registered only where the build found python3 with gguf and numpy
// Our Writer's output checked by the reference reader: tests/data/gguf/check_writer_output.py runs GGUFReader on
// it and compares every value and tensor with what is written here.
TEST_CASE("gguf writer output is read correctly by the Python gguf package", "[gguf][python]") {
    const std::string python = PI_PYTHON;
    Writer w;
    w.add_string("general.architecture", "llama");
    w.add("t.u8", make_uint(ValueType::UINT8, 250));
    w.add("t.i8", make_int(ValueType::INT8, -7));
    w.add("t.u16", make_uint(ValueType::UINT16, 65000));
    w.add("t.i16", make_int(ValueType::INT16, -1234));
    w.add_uint32("t.u32", 123456789);
    w.add("t.i32", make_int(ValueType::INT32, -123456789));
    w.add_float32("t.f32", 2.5f);
    w.add("t.bool", make_bool(true));
    w.add_string("t.string", "caf\xc3\xa9");
    w.add("t.u64", make_uint(ValueType::UINT64, UINT64_MAX));
    w.add("t.i64", make_int(ValueType::INT64, INT64_MIN));
    w.add("t.f64", make_float64(0.1));
    w.add("t.arr.i32", make_array(ValueType::INT32, {make_int(ValueType::INT32, 3), make_int(ValueType::INT32, -4)}));
    w.add("t.arr.str", make_array(ValueType::STRING, {make_string("a"), make_string("bc")}));
    w.add("t.nested", make_array(ValueType::ARRAY, {make_array(ValueType::UINT16, {make_uint(ValueType::UINT16, 1)}),
                                                    make_array(ValueType::UINT16, {make_uint(ValueType::UINT16, 2),
                                                                                   make_uint(ValueType::UINT16, 3)})}));
    // F32 (2 rows of 3): i - 2.5; F16 (4): 1, 2, 3, 4; Q8_0 (1 block): d = 0.5, q = j - 16.
    float f32[6];
    for (int i = 0; i < 6; ++i) f32[i] = static_cast<float>(i) - 2.5f;
    w.add_tensor("w.f32", TensorType::F32, {3, 2}, f32, sizeof f32);
    const uint16_t f16[4] = {0x3c00, 0x4000, 0x4200, 0x4400};
    w.add_tensor("w.f16", TensorType::F16, {4}, f16, sizeof f16);
    uint8_t q8[34] = {0x00, 0x38};  // fp16 0.5
    for (int j = 0; j < 32; ++j) q8[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
    w.add_tensor("w.q8_0", TensorType::Q8_0, {32}, q8, sizeof q8);

    TempDir dir;
    std::string path = dir.file("ours.gguf");
    w.write_file(path);
    std::string cmd = "\"" + python + "\" \"" + PI_SOURCE_DIR + "/tests/data/gguf/check_writer_output.py\" \"" + path + "\"";
    INFO(cmd);
    CHECK(std::system(cmd.c_str()) == 0);
}
#endif
