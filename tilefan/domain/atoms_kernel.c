/* The atoms potential of one tile, fused: phi[i,j,k] += e_a / sqrt(|p - r_a|^2 + eps^2).
 *
 * Built by stepfunctions/build_kernel.sh into a shared library that ctypes loads
 * (tilefan/domain/ckernel.py). No libc or libm call at all: sqrt is the CPU's own
 * instruction (-fno-math-errno), so the library runs on any glibc, including the Lambda
 * runtime's 2.26. Each function is built three times (x86-64 baseline, AVX2+FMA, AVX-512)
 * and the loader calls the best one the CPU supports (tilefan_kernel_level).
 *
 * Atoms are summed in table order at every point, like the NumPy kernel. The innermost
 * loop runs over the contiguous last axis, so it vectorises; the float version's
 * 1/sqrt may use the reciprocal-square-root instruction with one Newton step, which is
 * what atoms_rtol leaves room for.
 */
#include <math.h>
#include <stddef.h>

#define PHI_BLOCK(NAME, T, SQRT, TARGET)                                                  \
    TARGET void NAME(const T *xs, ptrdiff_t ni, const T *ys, ptrdiff_t nj, const T *zs,   \
                     ptrdiff_t nk, const T *ax, const T *ay, const T *az, const T *ae,    \
                     ptrdiff_t na, T eps2, T *restrict out) {                             \
        for (ptrdiff_t i = 0; i < ni; i++) {                                              \
            for (ptrdiff_t j = 0; j < nj; j++) {                                          \
                T *restrict row = out + (i * nj + j) * nk;                                \
                for (ptrdiff_t a = 0; a < na; a++) {                                      \
                    const T dx = xs[i] - ax[a], dy = ys[j] - ay[a];                       \
                    const T dxy = dx * dx + dy * dy + eps2, e = ae[a], za = az[a];        \
                    for (ptrdiff_t k = 0; k < nk; k++) {                                  \
                        const T dz = zs[k] - za;                                          \
                        row[k] += e / SQRT(dxy + dz * dz);                                \
                    }                                                                     \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }

#define BASE
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma,prefer-vector-width=512")))

PHI_BLOCK(tilefan_phi_f32_l1, float, sqrtf, BASE)
PHI_BLOCK(tilefan_phi_f64_l1, double, sqrt, BASE)
PHI_BLOCK(tilefan_phi_f32_l2, float, sqrtf, AVX2)
PHI_BLOCK(tilefan_phi_f64_l2, double, sqrt, AVX2)
PHI_BLOCK(tilefan_phi_f32_l3, float, sqrtf, AVX512)
PHI_BLOCK(tilefan_phi_f64_l3, double, sqrt, AVX512)

/* The best level this CPU runs: 3 (AVX-512), 2 (AVX2 and FMA) or 1 (the x86-64 baseline);
 * the loader calls the functions of that level (tilefan_phi_<f32|f64>_l<level>). */
int tilefan_kernel_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return 3;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
    return 1;
}
