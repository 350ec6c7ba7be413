/* rope.cu: rotary position embedding on the GPU, in place; judged against rope.c by
 * rope-test.c. One thread per rotated pair; the same f32 products as the CPU. */
#include "dsk-cuda.cuh"

__global__ void
rope_kernel (float *x, size_t n_tokens, size_t n_heads, size_t token_stride,
             size_t head_stride, size_t rot_offset, size_t half, const int32_t *positions,
             const float *cos_tab, const float *sin_tab, int interleaved)
{
  const size_t total = n_tokens * n_heads * half;
  for (size_t r = blockIdx.x * (size_t) blockDim.x + threadIdx.x; r < total;
       r += (size_t) gridDim.x * blockDim.x) {
    const size_t i = r % half, h = (r / half) % n_heads, t = r / (half * n_heads);
    const float c = cos_tab[(size_t) positions[t] * half + i];
    const float s = sin_tab[(size_t) positions[t] * half + i];
    float *v = x + t * token_stride + h * head_stride + rot_offset;
    const size_t ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
    const float a = v[ia], b = v[ib];
    v[ia] = a * c - b * s;
    v[ib] = b * c + a * s;
  }
}

extern "C" dsk_status
dsk_rope_f32_cuda (float *x, size_t n_tokens, size_t n_heads, size_t token_stride,
                   size_t head_stride, size_t rot_offset, size_t rot_dim,
                   const int32_t *positions, const float *cos_tab, const float *sin_tab,
                   size_t n_pos, dsk_rope_mode mode, void *stream)
{
  if (!x || !positions || !cos_tab || !sin_tab || n_tokens == 0 || n_heads == 0 ||
      rot_dim == 0 || rot_dim % 2 || n_pos == 0)
    return DSK_ERR_INVALID;
  if (mode != DSK_ROPE_HALF && mode != DSK_ROPE_INTERLEAVED)
    return DSK_ERR_UNSUPPORTED;
  if ((n_heads > 1 && head_stride < rot_offset + rot_dim) ||
      (n_tokens > 1 && token_stride < (n_heads - 1) * head_stride + rot_offset + rot_dim))
    return DSK_ERR_INVALID;
  /* positions live on the device: the caller guarantees 0 <= p < n_pos (the CPU twin checks) */
  const size_t half = rot_dim / 2, total = n_tokens * n_heads * half;
  rope_kernel<<<dsk_cuda_blocks (total, 256), 256, 0, (cudaStream_t) stream>>> (
      x, n_tokens, n_heads, token_stride, head_stride, rot_offset, half, positions, cos_tab,
      sin_tab, mode == DSK_ROPE_INTERLEAVED);
  DSK_CUDA_CHECK_LAUNCH ();
  return DSK_OK;
}
