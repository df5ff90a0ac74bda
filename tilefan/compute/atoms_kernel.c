/* The atoms potential of one tile, fused: phi[i,j,k] += e_a / sqrt(|p - r_a|^2 + eps^2).
 *
 * Built by stepfunctions/build_kernel.sh into a shared library that ctypes loads
 * (tilefan/compute/ckernel.py). No libc or libm call at all: sqrt is the CPU's own
 * instruction (-fno-math-errno), so the library runs on any glibc, including the Lambda
 * runtime's 2.26. Each function is built three times (x86-64 baseline, AVX2+FMA, AVX-512)
 * and the loader calls the best one the CPU supports (tilefan_kernel_level).
 *
 * Atoms are summed in table order at every point, like the NumPy kernel. The innermost
 * loop runs over the contiguous last axis, so it vectorises; the float version's
 * 1/sqrt may use the reciprocal-square-root instruction with one Newton step, which is
 * what atoms_rtol leaves room for.
 *
 * Every row of a tile meets each atom at the same z offsets, so the baseline builds and the
 * AVX2 float64 one compute (z_k - z_a)^2 once per block of atoms into scratch memory from the
 * caller (at least 2 nk elements, or the call computes nothing; blocks of nscratch / nk atoms,
 * 2 nscratch / 3 nk in the AVX2 float64 build, sized by ckernel.py) and each row only adds its own
 * (x - x_a)^2 + (y - y_a)^2: a subtraction and a multiply-add fewer per pair in an inner loop
 * that the FMA pipes bound. Summing block after block keeps each point's table order. The
 * AVX2 float32 loop keeps computing its own offsets: it runs four times as many pairs a
 * second, and a table read from L2 made it no faster (benchmarks/atoms_kernels.py).
 *
 * The AVX2 float64 build is written by hand (tilefan_phi_f64_l2, below): compiled from the
 * generic loop it spends its time in vsqrtpd and vdivpd, which AVX2-only CPUs issue at a few
 * cycles per element, so it ran at a quarter of the float32 rate. It seeds 1/sqrt from a
 * float32 copy of the table (one float32 add for eight points, not four conversions) and
 * takes rows in pairs that share the table's loads: 1.1-1.2x the rate of converting the
 * float64 table's values for every seed (benchmarks/atoms_kernels.py).
 */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>

/* Blocks of atoms: dz2[a * nk + k] = (zs[k] - az[a0 + a])^2, then ROW over every row. */
#define PHI_TABLE(NAME, T, ROW, TARGET)                                                            \
    TARGET void NAME(const T *xs, ptrdiff_t ni, const T *ys, ptrdiff_t nj, const T *zs,            \
                     ptrdiff_t nk, const T *ax, const T *ay, const T *az, const T *ae,             \
                     ptrdiff_t na, T eps2, T *restrict dz2, ptrdiff_t nscratch, T *restrict out) { \
        if (nk <= 0 || nscratch < 2 * nk) return; /* the caller sizes scratch (ckernel.py) */      \
        const ptrdiff_t block = nscratch / nk;                                                     \
        for (ptrdiff_t a0 = 0; a0 < na; a0 += block) {                                             \
            const ptrdiff_t nb = na - a0 < block ? na - a0 : block;                                \
            for (ptrdiff_t a = 0; a < nb; a++) {                                                   \
                for (ptrdiff_t k = 0; k < nk; k++) {                                               \
                    const T dz = zs[k] - az[a0 + a];                                               \
                    dz2[a * nk + k] = dz * dz;                                                     \
                }                                                                                  \
            }                                                                                      \
            for (ptrdiff_t i = 0; i < ni; i++) {                                                   \
                for (ptrdiff_t j = 0; j < nj; j++) {                                               \
                    T *restrict row = out + (i * nj + j) * nk;                                     \
                    for (ptrdiff_t a = a0; a < a0 + nb; a++) {                                     \
                        const T dx = xs[i] - ax[a], dy = ys[j] - ay[a];                            \
                        ROW(dz2 + (a - a0) * nk, nk, dx * dx + dy * dy + eps2, ae[a], row);        \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

/* Without the table: every row computes its own z offsets (the AVX2 float32 build). */
#define PHI_DIRECT(NAME, T, SQRT, TARGET)                                                          \
    TARGET void NAME(const T *xs, ptrdiff_t ni, const T *ys, ptrdiff_t nj, const T *zs,            \
                     ptrdiff_t nk, const T *ax, const T *ay, const T *az, const T *ae,             \
                     ptrdiff_t na, T eps2, T *restrict scratch, ptrdiff_t nscratch,                \
                     T *restrict out) {                                                            \
        (void)scratch, (void)nscratch;                                                             \
        for (ptrdiff_t i = 0; i < ni; i++) {                                                       \
            for (ptrdiff_t j = 0; j < nj; j++) {                                                   \
                T *restrict row = out + (i * nj + j) * nk;                                         \
                for (ptrdiff_t a = 0; a < na; a++) {                                               \
                    const T dx = xs[i] - ax[a], dy = ys[j] - ay[a];                                \
                    const T dxy = dx * dx + dy * dy + eps2, e = ae[a], za = az[a];                 \
                    for (ptrdiff_t k = 0; k < nk; k++) {                                           \
                        const T dz = zs[k] - za;                                                   \
                        row[k] += e / SQRT(dxy + dz * dz);                                         \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

/* One row (fixed i, j) and one atom: row[k] += e / sqrt(dxy + dz2[k]). */
#define PLAIN_ROW(NAME, T, SQRT, TARGET)                                                     \
    TARGET static inline void NAME(const T *restrict dz2, ptrdiff_t nk, T dxy, T e,         \
                                   T *restrict row) {                                        \
        for (ptrdiff_t k = 0; k < nk; k++) row[k] += e / SQRT(dxy + dz2[k]);                 \
    }

#define BASE
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma,prefer-vector-width=512")))

PLAIN_ROW(row_f32_l1, float, sqrtf, BASE)
PLAIN_ROW(row_f64_l1, double, sqrt, BASE)
PHI_TABLE(tilefan_phi_f32_l1, float, row_f32_l1, BASE)
PHI_TABLE(tilefan_phi_f64_l1, double, row_f64_l1, BASE)
PHI_DIRECT(tilefan_phi_f32_l2, float, sqrtf, AVX2)

/* 1/sqrt(d2) for four doubles without vsqrtpd or vdivpd, from y0, the float32 reciprocal
 * square root of d2 rounded to float32. y0's relative error e is at most 1.5 * 2^-12 (the
 * instruction, on Intel and AMD) plus 2^-24: d2 reaches float32 as fl(fl(dxy) + fl(dz2)),
 * whose two non-negative terms' roundings add at most 2^-24 and the sum's another 2^-24,
 * halved by the square root. With r = 1 - d2 y0^2 (|r| <= 2e + e^2 < 7.33e-4),
 * 1/sqrt(d2) = y0 (1 - r)^(-1/2) = y0 (1 + r/2 + 3r^2/8 + 5r^3/16 + 35r^4/128 + ...); the
 * terms dropped sum to at most (63/256)|r|^5 / (1 - |r|) < 5.3e-17 < 2^-54, under half an
 * ulp, so the result is as good as 1/sqrt in double up to a few ulp of rounding. One
 * polynomial (seven multiplies and FMAs) instead of a Newton step and a third-order one
 * (nine) is what the FMA pipes, the limit here, gain. */
AVX2 static inline __m256d refine_pd_avx2(__m256d d2, __m128 y0f) {
    const __m256d y0 = _mm256_cvtps_pd(y0f);
    const __m256d r = _mm256_fnmadd_pd(_mm256_mul_pd(d2, y0), y0, _mm256_set1_pd(1.0));
    __m256d p = _mm256_fmadd_pd(r, _mm256_set1_pd(35.0 / 128), _mm256_set1_pd(5.0 / 16));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(3.0 / 8));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.5));
    return _mm256_fmadd_pd(_mm256_mul_pd(y0, r), p, y0);
}

/* Float32's normal range with a margin: inside it the float32 seed above is valid. The lower
 * end leaves room for a process that flushes float32 subnormals to zero (another library's
 * -ffast-math): an fl(dz2) below 2^-126 read as 0 then moves d2 by under 1.2e-8 of it. */
#define SEED_MIN 1e-30
#define SEED_MAX 1e36

/* Whether a row's every d2 = dxy + dz2[k] is inside the seed's range (zs is monotonic, so
 * dz2 is largest at one end of the row). */
AVX2 static inline int seeded_f64_l2(const double *restrict dz2, ptrdiff_t nk, double dxy) {
    return dxy >= SEED_MIN && dxy + (dz2[0] > dz2[nk - 1] ? dz2[0] : dz2[nk - 1]) <= SEED_MAX;
}

/* One row, one atom, from k on: four points at a time (when the caller found the row
 * ``seeded``), then one at a time. */
AVX2 static inline void tail_f64_l2(const double *restrict dz2, const float *restrict dz2f, ptrdiff_t k,
                                    ptrdiff_t nk, int seeded, double dxy, double e, double *restrict row) {
    if (seeded) {
        const __m256d vdxy = _mm256_set1_pd(dxy), ve = _mm256_set1_pd(e);
        const __m128 vdxyf = _mm_set1_ps((float)dxy);
        for (; k + 4 <= nk; k += 4) {
            const __m128 yf = _mm_rsqrt_ps(_mm_add_ps(_mm_loadu_ps(dz2f + k), vdxyf));
            const __m256d y = refine_pd_avx2(_mm256_add_pd(_mm256_loadu_pd(dz2 + k), vdxy), yf);
            _mm256_storeu_pd(row + k, _mm256_fmadd_pd(ve, y, _mm256_loadu_pd(row + k)));
        }
    }
    for (; k < nk; k++) row[k] += e / sqrt(dxy + dz2[k]);  /* the ragged end; rows out of the seed's range */
}

/* Eight points (k to k + 7) of one row and one atom, from the table's values there (zf in
 * float32, z0 and z1 in float64): one float32 seed vector, two refined halves. */
#define EIGHT_F64_L2(ROW, K, ZF, Z0, Z1, VDXY, VDXYF, VE)                                       \
    do {                                                                                       \
        const __m256 yf = _mm256_rsqrt_ps(_mm256_add_ps(ZF, VDXYF));                           \
        const __m256d y0 = refine_pd_avx2(_mm256_add_pd(Z0, VDXY), _mm256_castps256_ps128(yf)); \
        const __m256d y1 = refine_pd_avx2(_mm256_add_pd(Z1, VDXY), _mm256_extractf128_ps(yf, 1)); \
        _mm256_storeu_pd(ROW + K, _mm256_fmadd_pd(VE, y0, _mm256_loadu_pd(ROW + K)));          \
        _mm256_storeu_pd(ROW + K + 4, _mm256_fmadd_pd(VE, y1, _mm256_loadu_pd(ROW + K + 4)));  \
    } while (0)

/* row[k] += e / sqrt(dxy + dz2[k]) for one row and one atom. */
AVX2 static inline void row_f64_l2(const double *restrict dz2, const float *restrict dz2f, ptrdiff_t nk,
                                   double dxy, double e, double *restrict row) {
    ptrdiff_t k = 0;
    const int seeded = seeded_f64_l2(dz2, nk, dxy);
    if (seeded) {
        const __m256d vdxy = _mm256_set1_pd(dxy), ve = _mm256_set1_pd(e);
        const __m256 vdxyf = _mm256_set1_ps((float)dxy);
        for (; k + 8 <= nk; k += 8) {
            const __m256 zf = _mm256_loadu_ps(dz2f + k);
            const __m256d z0 = _mm256_loadu_pd(dz2 + k), z1 = _mm256_loadu_pd(dz2 + k + 4);
            EIGHT_F64_L2(row, k, zf, z0, z1, vdxy, vdxyf, ve);
        }
    }
    tail_f64_l2(dz2, dz2f, k, nk, seeded, dxy, e, row);
}

/* The same for two rows at once, which share the table's loads. Each row's points take the
 * same steps as in row_f64_l2, so pairing rows changes no bit. */
AVX2 static inline void row_pair_f64_l2(const double *restrict dz2, const float *restrict dz2f, ptrdiff_t nk,
                                        double dxy, double dxy2, double e, double *restrict row,
                                        double *restrict row2) {
    if (!seeded_f64_l2(dz2, nk, dxy) || !seeded_f64_l2(dz2, nk, dxy2)) {
        row_f64_l2(dz2, dz2f, nk, dxy, e, row);
        row_f64_l2(dz2, dz2f, nk, dxy2, e, row2);
        return;
    }
    const __m256d vdxy = _mm256_set1_pd(dxy), vdxy2 = _mm256_set1_pd(dxy2), ve = _mm256_set1_pd(e);
    const __m256 vdxyf = _mm256_set1_ps((float)dxy), vdxyf2 = _mm256_set1_ps((float)dxy2);
    ptrdiff_t k = 0;
    for (; k + 8 <= nk; k += 8) {
        const __m256 zf = _mm256_loadu_ps(dz2f + k);
        const __m256d z0 = _mm256_loadu_pd(dz2 + k), z1 = _mm256_loadu_pd(dz2 + k + 4);
        EIGHT_F64_L2(row, k, zf, z0, z1, vdxy, vdxyf, ve);
        EIGHT_F64_L2(row2, k, zf, z0, z1, vdxy2, vdxyf2, ve);
    }
    tail_f64_l2(dz2, dz2f, k, nk, 1, dxy, e, row);
    tail_f64_l2(dz2, dz2f, k, nk, 1, dxy2, e, row2);
}

/* A row's dx^2 + dy^2 + eps^2, rounded the same way whether the row is the first of a pair,
 * the second or alone (the explicit FMA leaves the compiler no contraction to choose). */
AVX2 static inline double dxy_f64_l2(double dx2, double dy, double eps2) {
    return __builtin_fma(dy, dy, dx2) + eps2;
}

/* The AVX2 float64 build: blocks of atoms as in PHI_TABLE, with the table's float32 copy
 * after it (the seeds' d2 comes from one float32 add instead of two conversions), and rows
 * in pairs. Needs nscratch >= 2 nk (one atom's two tables take 1.5 nk). */
AVX2 void tilefan_phi_f64_l2(const double *xs, ptrdiff_t ni, const double *ys, ptrdiff_t nj, const double *zs,
                             ptrdiff_t nk, const double *ax, const double *ay, const double *az,
                             const double *ae, ptrdiff_t na, double eps2, double *restrict scratch,
                             ptrdiff_t nscratch, double *restrict out) {
    if (nk <= 0 || nscratch < 2 * nk) return; /* the caller sizes scratch (ckernel.py) */
    const ptrdiff_t block = 2 * nscratch / (3 * nk);
    double *dz2 = scratch;  /* the two tables share scratch, end to end */
    float *dz2f = (float *)(scratch + block * nk);
    for (ptrdiff_t a0 = 0; a0 < na; a0 += block) {
        const ptrdiff_t nb = na - a0 < block ? na - a0 : block;
        for (ptrdiff_t a = 0; a < nb; a++) {
            for (ptrdiff_t k = 0; k < nk; k++) {
                const double dz = zs[k] - az[a0 + a];
                dz2[a * nk + k] = dz * dz;
                dz2f[a * nk + k] = (float)(dz * dz);
            }
        }
        for (ptrdiff_t i = 0; i < ni; i++) {
            for (ptrdiff_t j = 0; j < nj; j += 2) {
                double *restrict row = out + (i * nj + j) * nk;
                for (ptrdiff_t a = a0; a < a0 + nb; a++) {
                    const double dx = xs[i] - ax[a], dx2 = dx * dx;
                    const double dxy = dxy_f64_l2(dx2, ys[j] - ay[a], eps2);
                    const double *t = dz2 + (a - a0) * nk;
                    const float *tf = dz2f + (a - a0) * nk;
                    if (j + 1 < nj) {
                        const double dxy2 = dxy_f64_l2(dx2, ys[j + 1] - ay[a], eps2);
                        row_pair_f64_l2(t, tf, nk, dxy, dxy2, ae[a], row, row + nk);
                    } else {
                        row_f64_l2(t, tf, nk, dxy, ae[a], row);
                    }
                }
            }
        }
    }
}


/* The AVX-512 builds by hand too: vrsqrt14 estimates 1/sqrt with relative error below
 * 2^-14 (in its type's whole range); Newton steps (error 1.5 e^2 each) refine it: one for
 * float32 (5.6e-9, under half an ulp), two for float64 (5.6e-9, then 4.7e-17). Rows whose
 * smallest squared distance is subnormal (an atom within 1e-18 or 1e-150 of a grid line)
 * take the exact path. The ragged end of a row is a masked vector. */
#define PHI_AVX512(NAME, T, V, N, MASK, SET1, LOADU, STOREU, MASKZ_LOADU, MASK_STOREU, SUB, MUL, FMADD,  \
                   FNMADD, RSQRT14, STEPS, TINY)                                                        \
    AVX512 void NAME(const T *xs, ptrdiff_t ni, const T *ys, ptrdiff_t nj, const T *zs, ptrdiff_t nk,    \
                     const T *ax, const T *ay, const T *az, const T *ae, ptrdiff_t na, T eps2,          \
                     T *restrict scratch, ptrdiff_t nscratch, T *restrict out) {                        \
        (void)scratch, (void)nscratch; /* unused: no table measured on an AVX-512 CPU yet */             \
        const V three_halves = SET1((T)1.5), half = SET1((T)0.5);                                       \
        for (ptrdiff_t i = 0; i < ni; i++) {                                                            \
            for (ptrdiff_t j = 0; j < nj; j++) {                                                        \
                T *restrict row = out + (i * nj + j) * nk;                                              \
                for (ptrdiff_t a = 0; a < na; a++) {                                                    \
                    const T dx = xs[i] - ax[a], dy = ys[j] - ay[a], dxy = dx * dx + dy * dy + eps2;     \
                    if (dxy < (T)TINY) {                                                                \
                        for (ptrdiff_t k = 0; k < nk; k++) {                                            \
                            const T dz = zs[k] - az[a];                                                 \
                            row[k] += ae[a] / (T)sqrt((double)(dxy + dz * dz));                         \
                        }                                                                               \
                        continue;                                                                       \
                    }                                                                                   \
                    const V vza = SET1(az[a]), ve = SET1(ae[a]), vdxy = SET1(dxy);                      \
                    for (ptrdiff_t k = 0; k < nk; k += N) {                                             \
                        const MASK m = nk - k >= N ? (MASK)~0u : (MASK)((1u << (nk - k)) - 1);          \
                        const V dz = SUB(MASKZ_LOADU(m, zs + k), vza);                                  \
                        const V d2 = FMADD(dz, dz, vdxy), h = MUL(d2, half);                            \
                        V y = RSQRT14(d2);                                                              \
                        for (int s = 0; s < STEPS; s++) y = MUL(y, FNMADD(h, MUL(y, y), three_halves)); \
                        MASK_STOREU(row + k, m, FMADD(ve, y, MASKZ_LOADU(m, row + k)));                 \
                    }                                                                                   \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
    }

PHI_AVX512(tilefan_phi_f32_l3, float, __m512, 16, __mmask16, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps,
           _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps, _mm512_sub_ps, _mm512_mul_ps, _mm512_fmadd_ps,
           _mm512_fnmadd_ps, _mm512_rsqrt14_ps, 1, 1e-36)
PHI_AVX512(tilefan_phi_f64_l3, double, __m512d, 8, __mmask8, _mm512_set1_pd, _mm512_loadu_pd, _mm512_storeu_pd,
           _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd, _mm512_sub_pd, _mm512_mul_pd, _mm512_fmadd_pd,
           _mm512_fnmadd_pd, _mm512_rsqrt14_pd, 2, 1e-300)

/* The calling convention's version: ckernel.py loads no library whose version differs from
 * its own (one built from an earlier atoms_kernel.c would be called with the wrong arguments).
 * 2: the scratch memory for the z offsets' table comes before out; 3: it holds at least 2 nk
 * elements (the AVX2 float64 build keeps a float32 copy of the table). */
int tilefan_kernel_abi(void) { return 3; }

/* The best level this CPU runs: 3 (AVX-512), 2 (AVX2 and FMA) or 1 (the x86-64 baseline);
 * the loader calls the functions of that level (tilefan_phi_<f32|f64>_l<level>). */
int tilefan_kernel_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return 3;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
    return 1;
}
