// Causal attention of a prompt chunk (n >= kMinRows query rows at once), tiled so that a K/V row read from the cache
// serves 64 query rows instead of one. The per-row kernels (attention_short.cuh, attention.cu) read the head's K and
// V rows once per query row: for 512 rows x 32 heads x 7B shapes that is ~2 GB of L2 traffic per layer (~250 us on
// the H100); here it is ~1/64 of that, and the work becomes FMA-bound on the CUDA cores (fp32 throughout: q, the
// scores and the weights are never rounded to 16 bits, so results stay within float rounding of the CPU's).
//
// Block: one head x a tile of 64 query rows, 256 threads; thread (ty = tid / 16, tx = tid % 16) owns rows ty + 16 i
// (i < 4). The block walks K/V tiles of 32 positions up to its last row's position (online softmax: running max m,
// running sum l, rescaled accumulators):
//   scores   S[r][c] = q_r . k_c * scale: thread cols tx, tx + 16; 16-byte shared loads along d (K rows padded
//            by 4 floats so that 8 lanes' rows fall in distinct banks; q rows are broadcasts)
//   softmax  per row: max and sum over the 16 lanes of the row (shuffles), p = exp(s - m), masked to c <= row's pos
//   values   O[r][d] += sum_c p[r][c] v_c[d]: thread dims tx * 4 + 64 j (j < 2), p read 4 positions at a time
// Shared memory (head_dim 128): q 32 KiB, K 16.5 KiB, V 16 KiB, p 9 KiB = 74 KiB (3 blocks per SM). Tiles are
// handed out longest first (the last query tile reads the most positions).
#include <cuda_fp16.h>

#include <mutex>

#include "backends/cuda/attention_short.cuh"
#include "backends/cuda/cuda_backend.h"

namespace pi::cuda {
namespace {

constexpr int kThreads = 256;
constexpr uint32_t kQueryTile = 64, kKeyTile = 32, kRowsPerThread = 4, kLanesPerRow = 16;
constexpr uint32_t kMaxHeadDim = 128, kDimChunks = 2;  // thread dims tx * 4 + 64 j
constexpr uint32_t kPadK = 4, kPadP = 4;

size_t shared_bytes(uint32_t head_dim) {
    return 4 * (size_t(kQueryTile) * head_dim + size_t(kKeyTile) * (head_dim + kPadK) + size_t(kKeyTile) * head_dim +
                size_t(kQueryTile) * (kKeyTile + kPadP));
}

template <typename E>
__global__ void __launch_bounds__(kThreads)
    attention_prompt_kernel(const float *__restrict__ q, const E *__restrict__ k_cache, const E *__restrict__ v_cache,
                            uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t pos0, uint32_t n,
                            float scale, float *__restrict__ out) {
    extern __shared__ __align__(16) float smem[];
    const uint32_t hd = head_dim, k_stride = hd + kPadK, p_stride = kKeyTile + kPadP;
    float *q_s = smem;                              // [kQueryTile][hd]
    float *k_s = q_s + kQueryTile * hd;             // [kKeyTile][hd + kPadK]
    float *v_s = k_s + kKeyTile * k_stride;         // [kKeyTile][hd]
    float *p_s = v_s + kKeyTile * hd;               // [kQueryTile][kKeyTile + kPadP]

    const uint32_t n_tiles = (n + kQueryTile - 1) / kQueryTile;
    const uint32_t tile = n_tiles - 1 - blockIdx.x / n_head, h = blockIdx.x % n_head;
    const uint32_t kvh = h / (n_head / n_head_kv);
    const uint64_t q_row = uint64_t(n_head) * hd, kv_dim = uint64_t(n_head_kv) * hd;
    const uint32_t t0 = tile * kQueryTile, rows = min(kQueryTile, n - t0);
    const uint32_t tid = threadIdx.x, ty = tid / kLanesPerRow, tx = tid % kLanesPerRow;
    const uint32_t hd4 = hd / 4;

    for (uint32_t i = tid; i < kQueryTile * hd4; i += kThreads) {
        const uint32_t r = i / hd4, d = (i % hd4) * 4;
        const float4 v = r < rows ? *reinterpret_cast<const float4 *>(q + (t0 + r) * q_row + uint64_t(h) * hd + d)
                                  : make_float4(0, 0, 0, 0);
        *reinterpret_cast<float4 *>(&q_s[r * hd + d]) = v;
    }

    float m[kRowsPerThread], l[kRowsPerThread];
    float4 acc[kRowsPerThread][kDimChunks];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
        m[i] = -INFINITY, l[i] = 0.0f;
#pragma unroll
        for (int j = 0; j < kDimChunks; ++j) acc[i][j] = make_float4(0, 0, 0, 0);
    }
    const uint32_t last_pos = pos0 + t0 + rows - 1;  // the tile's last row's position: the keys it needs
    const E *k_head = k_cache + uint64_t(kvh) * hd, *v_head = v_cache + uint64_t(kvh) * hd;

    for (uint32_t k0 = 0; k0 <= last_pos; k0 += kKeyTile) {
        __syncthreads();  // the previous tile's K, V and p are used up
        for (uint32_t i = tid; i < kKeyTile * hd4; i += kThreads) {
            const uint32_t c = i / hd4, d = (i % hd4) * 4;
            const bool in = k0 + c <= last_pos;  // positions past it are zeros (p = 0 must not meet a NaN)
            const float4 kv = in ? short_attention::load4(k_head + uint64_t(k0 + c) * kv_dim + d) : make_float4(0, 0, 0, 0);
            const float4 vv = in ? short_attention::load4(v_head + uint64_t(k0 + c) * kv_dim + d) : make_float4(0, 0, 0, 0);
            *reinterpret_cast<float4 *>(&k_s[c * k_stride + d]) = kv;
            *reinterpret_cast<float4 *>(&v_s[c * hd + d]) = vv;
        }
        __syncthreads();

        // Scores of rows ty + 16 i against positions k0 + tx + 16 j.
        float s[kRowsPerThread][2];
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i) s[i][0] = s[i][1] = 0.0f;
#pragma unroll 4
        for (uint32_t d = 0; d < hd; d += 4) {
            const float4 ka = *reinterpret_cast<const float4 *>(&k_s[tx * k_stride + d]);
            const float4 kb = *reinterpret_cast<const float4 *>(&k_s[(tx + 16) * k_stride + d]);
#pragma unroll
            for (int i = 0; i < kRowsPerThread; ++i) {
                const float4 qv = *reinterpret_cast<const float4 *>(&q_s[(ty + 16 * i) * hd + d]);
                s[i][0] += qv.x * ka.x + qv.y * ka.y + qv.z * ka.z + qv.w * ka.w;
                s[i][1] += qv.x * kb.x + qv.y * kb.y + qv.z * kb.z + qv.w * kb.w;
            }
        }
        // Online softmax per row; the 16 lanes of a row are one half-warp (xor offsets < 16 stay inside it).
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i) {
            const uint32_t r = ty + 16 * i, pos = pos0 + t0 + r;
            float e[2];
            float tmax = -INFINITY;
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                const uint32_t c = k0 + tx + 16 * j;
                e[j] = c <= pos ? s[i][j] * scale : -INFINITY;
                tmax = fmaxf(tmax, e[j]);
            }
#pragma unroll
            for (int off = 8; off > 0; off >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, off));
            const float m_new = fmaxf(m[i], tmax);  // finite: position 0 is in every row's first tile
            const float corr = expf(m[i] - m_new);   // 0 on the first tile (m = -inf)
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                e[j] = e[j] == -INFINITY ? 0.0f : expf(e[j] - m_new);
                sum += e[j];
                p_s[r * p_stride + tx + 16 * j] = e[j];
            }
#pragma unroll
            for (int off = 8; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            l[i] = l[i] * corr + sum;
            m[i] = m_new;
#pragma unroll
            for (int j = 0; j < kDimChunks; ++j) {
                acc[i][j].x *= corr, acc[i][j].y *= corr, acc[i][j].z *= corr, acc[i][j].w *= corr;
            }
        }
        __syncthreads();  // p of every row written

        // O[r][d] += p[r][c] v[c][d] over the tile's positions, 4 at a time.
        for (uint32_t c = 0; c < kKeyTile; c += 4) {
            float4 pv[kRowsPerThread];
#pragma unroll
            for (int i = 0; i < kRowsPerThread; ++i) pv[i] = *reinterpret_cast<const float4 *>(&p_s[(ty + 16 * i) * p_stride + c]);
#pragma unroll
            for (int j = 0; j < kDimChunks; ++j) {
                const uint32_t d = tx * 4 + 64 * j;
                if (d >= hd) continue;
                const float4 v0 = *reinterpret_cast<const float4 *>(&v_s[(c + 0) * hd + d]);
                const float4 v1 = *reinterpret_cast<const float4 *>(&v_s[(c + 1) * hd + d]);
                const float4 v2 = *reinterpret_cast<const float4 *>(&v_s[(c + 2) * hd + d]);
                const float4 v3 = *reinterpret_cast<const float4 *>(&v_s[(c + 3) * hd + d]);
#pragma unroll
                for (int i = 0; i < kRowsPerThread; ++i) {
                    float4 &a = acc[i][j];
                    const float4 p = pv[i];
                    a.x += p.x * v0.x + p.y * v1.x + p.z * v2.x + p.w * v3.x;
                    a.y += p.x * v0.y + p.y * v1.y + p.z * v2.y + p.w * v3.y;
                    a.z += p.x * v0.z + p.y * v1.z + p.z * v2.z + p.w * v3.z;
                    a.w += p.x * v0.w + p.y * v1.w + p.z * v2.w + p.w * v3.w;
                }
            }
        }
    }

#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
        const uint32_t r = ty + 16 * i;
        if (r >= rows) continue;
        const float inv = 1.0f / l[i];
        float *o = out + (t0 + r) * q_row + uint64_t(h) * hd;
#pragma unroll
        for (int j = 0; j < kDimChunks; ++j) {
            const uint32_t d = tx * 4 + 64 * j;
            if (d >= hd) continue;
            *reinterpret_cast<float4 *>(o + d) = make_float4(acc[i][j].x * inv, acc[i][j].y * inv, acc[i][j].z * inv,
                                                             acc[i][j].w * inv);
        }
    }
}

// Allows the kernel its (more than 48 KiB of) dynamic shared memory, once per instantiation.
template <typename E>
int32_t allow_shared() {
    static std::once_flag once;
    static cudaError_t err = cudaSuccess;
    std::call_once(once, [] {
        err = cudaFuncSetAttribute(attention_prompt_kernel<E>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   int(shared_bytes(kMaxHeadDim)));
    });
    return check(err, "cudaFuncSetAttribute (attention_prompt)");
}

}  // namespace

bool attention_prompt_serves(uint32_t kv_type, uint32_t n_head_kv, uint32_t head_dim, uint64_t n, const float *q,
                             const void *k_cache, const void *v_cache) {
    const uintptr_t align = kv_type == PI_BK_KV_F16 ? 8 : 16;
    return n >= kAttentionPromptMinRows && n <= INT32_MAX && head_dim <= kMaxHeadDim && head_dim % 4 == 0 &&
           (uint64_t(n_head_kv) * head_dim) % 4 == 0 && reinterpret_cast<uintptr_t>(q) % 16 == 0 &&
           reinterpret_cast<uintptr_t>(k_cache) % align == 0 && reinterpret_cast<uintptr_t>(v_cache) % align == 0;
}

int32_t attention_prompt(cudaStream_t stream, const float *q, const void *k_cache, const void *v_cache,
                         uint32_t kv_type, uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t pos0,
                         uint64_t n, float scale, float *out) {
    const uint64_t tiles = (n + kQueryTile - 1) / kQueryTile;
    if (tiles * n_head > INT32_MAX) return fail(PI_BK_ERR_UNSUPPORTED, "cuda: attention: too many query rows");
    const unsigned grid = unsigned(tiles * n_head);
    const size_t smem = shared_bytes(head_dim);
    if (kv_type == PI_BK_KV_F16) {
        if (int32_t s = allow_shared<__half>()) return s;
        attention_prompt_kernel<__half><<<grid, kThreads, smem, stream>>>(
            q, static_cast<const __half *>(k_cache), static_cast<const __half *>(v_cache), n_head, n_head_kv,
            head_dim, pos0, uint32_t(n), scale, out);
    } else {
        if (int32_t s = allow_shared<float>()) return s;
        attention_prompt_kernel<float><<<grid, kThreads, smem, stream>>>(
            q, static_cast<const float *>(k_cache), static_cast<const float *>(v_cache), n_head, n_head_kv, head_dim,
            pos0, uint32_t(n), scale, out);
    }
    return check_launch("attention");
}

}  // namespace pi::cuda
