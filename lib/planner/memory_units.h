// Memory counted in whole units, every object rounded up: a plan within the unit budget is within the byte budget.
#pragma once

#include <cstdint>

namespace pi::planner {

inline uint64_t units_for(uint64_t bytes, uint64_t unit) { return bytes / unit + (bytes % unit != 0 ? 1 : 0); }

}  // namespace pi::planner
