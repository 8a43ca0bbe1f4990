// Command-line lists of numbers for the bench programs ("--positions 64,256,512").
#pragma once

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace pi::bench {

// The comma-separated integers of `text`, each in [lo, hi]; prints `complaint` and exits with status 2 otherwise
// (a bench's bad argument, like its usage message).
inline std::vector<long> parse_number_list(const char *text, long lo, long hi, const char *complaint) {
    std::vector<long> values;
    for (const char *p = text; *p;) {
        char *end = nullptr;
        const long v = std::strtol(p, &end, 10);
        if (end == p || v < lo || v > hi || (*end != ',' && *end != '\0')) {
            std::fprintf(stderr, "%s\n", complaint);
            std::exit(2);
        }
        values.push_back(v);
        p = *end == ',' ? end + 1 : end;
    }
    if (values.empty()) {
        std::fprintf(stderr, "%s\n", complaint);
        std::exit(2);
    }
    return values;
}

}  // namespace pi::bench
