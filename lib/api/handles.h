// What the opaque handles of the C API hold.
#pragma once

#include <memory>

#include "model/model.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

struct pi_model {
    std::unique_ptr<pi::Model> model;
};

struct pi_session {
    std::unique_ptr<pi::Session> session;
};

struct pi_detokenizer {
    const pi::Model *model = nullptr;
    pi::Utf8Stream stream;
};
