// The typed metadata getters: conversions they allow, and the errors that name key, expected and actual type.
#include "gguf_test_helpers.h"

using namespace gguf_test;
using namespace pi::gguf;
using Catch::Matchers::Contains;

namespace {

std::unique_ptr<File> getter_file(Bytes &storage) {
    Writer w;
    w.add_string("s", "hello");
    w.add("u8", make_uint(ValueType::UINT8, 9));
    w.add("u64.big", make_uint(ValueType::UINT64, UINT64_MAX));
    w.add("i32.neg", make_int(ValueType::INT32, -3));
    w.add("i16.pos", make_int(ValueType::INT16, 12));
    w.add_float32("f32", 0.25f);
    w.add("b", make_bool(true));
    w.add("a.str", make_array(ValueType::STRING, {make_string("x"), make_string("y")}));
    w.add("a.u8", make_array(ValueType::UINT8, {make_uint(ValueType::UINT8, 1), make_uint(ValueType::UINT8, 2)}));
    w.add("a.f64", make_array(ValueType::FLOAT64, {make_float64(0.5)}));
    w.add("a.u64.big", make_array(ValueType::UINT64, {make_uint(ValueType::UINT64, 1),
                                                      make_uint(ValueType::UINT64, UINT64_MAX)}));
    w.add("a.nested", make_array(ValueType::ARRAY, {make_array(ValueType::UINT8, {})}));
    storage = w.to_bytes();
    return File::from_memory(storage.data(), storage.size());
}

template <typename Fn>
std::string format_error(Fn &&fn) {
    try {
        fn();
    } catch (const pi::Error &e) {
        CHECK(e.status() == PI_ERR_FORMAT);
        return e.what();
    }
    FAIL("no error");
    return "";
}

}  // namespace

TEST_CASE("gguf getters convert between compatible types", "[gguf]") {
    Bytes storage;
    auto f = getter_file(storage);
    CHECK(f->get_string("s") == "hello");
    CHECK(f->get_string_or("missing", "fb") == "fb");
    CHECK(f->get_uint("u8") == 9);
    CHECK(f->get_uint("i16.pos") == 12);  // a signed type with a non-negative value
    CHECK(f->get_uint("u64.big") == UINT64_MAX);
    CHECK(f->get_uint_or("missing", 77) == 77);
    CHECK(f->get_int_or("i32.neg", 0) == -3);
    CHECK(f->get_int_or("u8", 0) == 9);
    CHECK(f->get_int_or("missing", -1) == -1);
    CHECK(f->get_float("f32") == 0.25);
    CHECK(f->get_float("i32.neg") == -3.0);  // any number
    CHECK(f->get_float("u8") == 9.0);
    CHECK(f->get_float_or("missing", 1.5) == 1.5);
    CHECK(f->get_bool_or("b", false));
    CHECK(f->get_bool_or("missing", true));
    CHECK(*f->get_string_array("a.str") == std::vector<std::string>{"x", "y"});
    CHECK(*f->get_int_array("a.u8") == std::vector<int64_t>{1, 2});
    CHECK(*f->get_float_array("a.u8") == std::vector<double>{1.0, 2.0});
    CHECK(*f->get_float_array("a.f64") == std::vector<double>{0.5});
    CHECK_FALSE(f->get_string_array("missing").has_value());
    CHECK_FALSE(f->get_int_array("missing").has_value());
    CHECK_FALSE(f->get_float_array("missing").has_value());
    CHECK(f->find("missing") == nullptr);
    CHECK(f->find_tensor("missing") == nullptr);
}

TEST_CASE("gguf getters name the key and the types on a mismatch", "[gguf]") {
    Bytes storage;
    auto f = getter_file(storage);
    CHECK_THAT(format_error([&] { f->get_string("nope"); }),
               Contains("<memory>") && Contains("missing metadata key 'nope'"));
    CHECK_THAT(format_error([&] { f->get_uint("nope"); }), Contains("missing metadata key 'nope'"));
    CHECK_THAT(format_error([&] { f->get_float("nope"); }), Contains("missing metadata key 'nope'"));
    CHECK_THAT(format_error([&] { f->get_string("u8"); }),
               Contains("metadata key 'u8'") && Contains("has type UINT8, expected STRING"));
    CHECK_THAT(format_error([&] { f->get_string_or("u8", ""); }), Contains("has type UINT8, expected STRING"));
    CHECK_THAT(format_error([&] { f->get_uint("s"); }), Contains("'s' has type STRING, expected an unsigned"));
    CHECK_THAT(format_error([&] { f->get_uint("f32"); }), Contains("has type FLOAT32"));
    CHECK_THAT(format_error([&] { f->get_uint("b"); }), Contains("has type BOOL"));
    CHECK_THAT(format_error([&] { f->get_uint("i32.neg"); }), Contains("'i32.neg' is -3"));
    CHECK_THAT(format_error([&] { f->get_int_or("u64.big", 0); }),
               Contains("18446744073709551615") && Contains("does not fit a signed 64-bit"));
    CHECK_THAT(format_error([&] { f->get_int_or("f32", 0); }), Contains("has type FLOAT32, expected an integer"));
    CHECK_THAT(format_error([&] { f->get_float("s"); }), Contains("has type STRING, expected a number"));
    CHECK_THAT(format_error([&] { f->get_float("a.u8"); }), Contains("has type ARRAY of UINT8"));
    CHECK_THAT(format_error([&] { f->get_bool_or("u8", false); }), Contains("has type UINT8, expected BOOL"));
    CHECK_THAT(format_error([&] { f->get_string_array("a.u8"); }),
               Contains("has type ARRAY of UINT8, expected ARRAY of STRING"));
    CHECK_THAT(format_error([&] { f->get_string_array("s"); }), Contains("has type STRING"));
    CHECK_THAT(format_error([&] { f->get_int_array("a.f64"); }), Contains("ARRAY of FLOAT64, expected an ARRAY"));
    CHECK_THAT(format_error([&] { f->get_int_array("a.u64.big"); }),
               Contains("element 1 is 18446744073709551615"));
    CHECK_THAT(format_error([&] { f->get_float_array("a.str"); }), Contains("ARRAY of STRING"));
    CHECK_THAT(format_error([&] { f->get_float_array("a.nested"); }), Contains("ARRAY of ARRAY"));
}

TEST_CASE("gguf type names and block sizes", "[gguf]") {
    CHECK(tensor_type_name(TensorType::Q4_K) == "Q4_K");
    CHECK(tensor_type_name(TensorType::BF16) == "BF16");
    CHECK(tensor_type_name(static_cast<TensorType>(4)) == "type 4");  // retired by ggml
    CHECK(tensor_type_name(static_cast<TensorType>(1000)) == "type 1000");
    for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0}) {
        CHECK(tensor_type_supported(t));
    }
    CHECK_FALSE(tensor_type_supported(TensorType::Q4_K));
    CHECK_FALSE(tensor_type_supported(TensorType::F64));
    CHECK(tensor_type_block_weights(TensorType::F32) == 1);
    CHECK(tensor_type_block_bytes(TensorType::F32) == 4);
    CHECK(tensor_type_block_bytes(TensorType::BF16) == 2);
    CHECK(tensor_type_block_weights(TensorType::Q8_0) == kQ8_0BlockWeights);
    CHECK(tensor_type_block_bytes(TensorType::Q8_0) == kQ8_0BlockBytes);
    CHECK(tensor_type_block_weights(TensorType::Q4_0) == kQ4_0BlockWeights);
    CHECK(tensor_type_block_bytes(TensorType::Q4_0) == kQ4_0BlockBytes);
    CHECK(tensor_type_block_weights(TensorType::Q6_K) == 256);
    CHECK(tensor_type_block_bytes(TensorType::Q6_K) == 210);
    CHECK_FALSE(tensor_type_known(static_cast<TensorType>(31)));
    CHECK(tensor_type_block_weights(static_cast<TensorType>(31)) == 0);
    CHECK(value_type_name(ValueType::FLOAT64) == "FLOAT64");
    CHECK(value_type_name(static_cast<ValueType>(13)) == "value type 13");
}
