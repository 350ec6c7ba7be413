/* quant.h: the block-quantized weight formats Q8 and Q4 on the CPU, and their dot products
 * against activations quantized to 8 bits (quant.c).
 *
 * Decode reads every weight once per token and is bound by memory bandwidth, so fewer bytes a
 * weight is speed. A weight row of @cols (a multiple of 32) is cut into blocks of 32:
 *
 *   Q8  codes u[32] (u8, the signed code + 128), scale d (f16):   w = d * (u - 128)
 *   Q4  codes q[32] (4 bits), scale d and minimum m (f16):        w = d * q + m
 *
 * A row keeps all its codes first, then its scales (then, Q4, its minimums): Q8 row = cols
 * bytes + cols/32 f16; Q4 row = cols/2 bytes + 2 * cols/32 f16; rows follow each other with no
 * padding (dsk_dtype_bytes). The codes go in groups of 16 blocks (the last group may hold
 * fewer, ng), interleaved so that one 64-byte load feeds one integer dot-product instruction
 * with 4 consecutive weights of each of the 16 blocks, one 32-bit lane per block:
 *
 *   Q8  quad k = 0..7 of a group: for each block l < ng, the codes of weights 4k .. 4k+3
 *       (4 bytes at k * 4 ng + 4 l);
 *   Q4  byte k * 4 ng + 4 l + i (k = 0..3, i = 0..3): weight 4k + i of block l in the low
 *       nibble, weight 4(k + 4) + i in the high one.
 *
 * Products with few tokens (decode) quantize each activation row x too, per block of 32:
 * dx = max |x| / 127, xq = round (x / dx) in [-127, 127], s = dx * sum (xq), its codes in the
 * Q8 order above. Then a block of w . x is, exactly in integers and then in f32,
 *
 *   Q8  d * dx * sum (u * xq) - 128 * d * s        Q4  d * dx * sum (q * xq) + m * s
 *
 * where sum (u * xq) is what AVX512-VNNI's vpdpbusd (u8 x s8) accumulates in each block's lane
 * over the group's 8 quads: one conversion and one multiply-add per 16 blocks. Products with
 * many tokens widen the codes back to f32 rows for the packed kernel (linear.c) instead: there
 * the activations stay f32.
 */
#ifndef DSK_CPU_QUANT_H
#define DSK_CPU_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "dsk.h"

/* Bytes of one row of @cols weights in @q (DSK_Q8 or DSK_Q4). */
static inline size_t
dsk_quant_row_bytes (dsk_dtype q, size_t cols)
{
  return dsk_dtype_bytes (q, cols);
}

/* dst (one row in @q) = the row @src of @cols values of @src_dtype (F32, BF16, F16), cols a
 * multiple of 32. Q8 takes the scale from each block's largest magnitude; Q4 from its range,
 * with the minimum; both are then refined toward the block's least squared error (quant.c).
 * 0 when the row holds a value that is not finite or too large for an f16 scale (|w| beyond
 * about 8e6 for Q8), which the format cannot represent; 1 otherwise. */
int dsk_quant_row (void *dst, dsk_dtype q, const void *src, dsk_dtype src_dtype, size_t cols);
/* dst[cols] (f32) = the row @src in @q, widened. */
void dsk_dequant_row (float *dst, const void *src, dsk_dtype q, size_t cols);

/* Bytes of one activation row of @cols quantized for the dot products (64-byte multiple). */
size_t dsk_qx_row_bytes (size_t cols);
/* dst = x[cols] quantized for the dot products (the same for Q8 and Q4 weights). */
void dsk_qx_quantize (void *dst, const float *x, size_t cols);

/* out[r] = w_r . x for @n_rows weight rows in @q (w[r], each @cols long; rows may repeat) and
 * one quantized activation row @xq. @next: where the rows after these begin (prefetched while
 * these are read), or NULL. The AVX512-VNNI kernel (for 4 or 8 rows) where the CPU has it,
 * else plain C; both give the same integer sums and differ only in the order of the f32
 * additions. */
void dsk_qdot (const void *const *w, int n_rows, const void *next, const void *xq, size_t cols,
               dsk_dtype q, float *out);

/* Whether dsk_qdot uses AVX512-VNNI (for reports and benchmarks). */
int dsk_quant_has_vnni (void);

#endif /* DSK_CPU_QUANT_H */
