// AVX-512 selection of the scores at or above a threshold (KernelTable::select_at_least): sixteen compares to a mask,
// the mask's indices packed with vpcompressd. Compressed in a register and stored whole (the next block overwrites
// the unused lanes): vpcompressd with a memory destination is microcoded and slow on Zen 4.
#include <immintrin.h>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::avx512 {

size_t select_at_least(const float *s, size_t n, float threshold, uint32_t *out) {
    const __m512 t = _mm512_set1_ps(threshold);
    const __m512i sixteen = _mm512_set1_epi32(16);
    __m512i index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t count = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        // _CMP_GE_OQ: false for a NaN score, as the scalar s >= t.
        const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(s + i), t, _CMP_GE_OQ);
        // count <= i, so the sixteen lanes end at or before out + i + 16 <= out + n.
        _mm512_storeu_si512(out + count, _mm512_maskz_compress_epi32(m, index));
        count += static_cast<size_t>(__builtin_popcount(m));
        index = _mm512_add_epi32(index, sixteen);
    }
    if (i < n) {
        const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
        const __mmask16 m = _mm512_mask_cmp_ps_mask(tail, _mm512_maskz_loadu_ps(tail, s + i), t, _CMP_GE_OQ);
        const unsigned k = static_cast<unsigned>(__builtin_popcount(m));
        _mm512_mask_storeu_epi32(out + count, static_cast<__mmask16>((1u << k) - 1),
                                 _mm512_maskz_compress_epi32(m, index));
        count += k;
    }
    return count;
}

}  // namespace pi::cpu::detail::avx512
