/* arena.c: scratch arenas (backend.h). Tensors are bump-allocated from chunks of backend
 * memory. A pass that outgrows the arena gets another chunk; at the next reset the chunks are
 * replaced by one of the largest total a pass has needed, so after the first pass of a given
 * size the arena allocates nothing. */
#include "backend-impl.h"

#include <stdlib.h>

#define ALIGN 64
#define MAX_CHUNKS 64

struct dsk_arena {
  dsk_backend *be;                 /* a reference */
  dsk_buffer *chunks[MAX_CHUNKS];
  size_t n_chunks;
  size_t used;                     /* bytes used in the last chunk */
  size_t pass_bytes;               /* bytes handed out since the last reset */
  size_t high_water;               /* the largest pass_bytes seen */
};

dsk_arena *
dsk_arena_new (dsk_backend *be)
{
  dsk_arena *a = calloc (1, sizeof *a);
  if (a)
    a->be = dsk_backend_ref (be);
  return a;
}

static void
free_chunks (dsk_arena *a)
{
  for (size_t i = 0; i < a->n_chunks; i++)
    dsk_buffer_free (a->chunks[i]);
  a->n_chunks = 0;
  a->used = 0;
}

void
dsk_arena_free (dsk_arena *a)
{
  if (!a)
    return;
  free_chunks (a);
  dsk_backend_unref (a->be);
  free (a);
}

void
dsk_arena_reset (dsk_arena *a)
{
  if (a->pass_bytes > a->high_water)
    a->high_water = a->pass_bytes;
  if (a->n_chunks > 1) {
    /* one chunk of the whole need; the memory is taken back and given at once */
    free_chunks (a);
    a->chunks[0] = dsk_buffer_new (a->be, a->high_water);
    a->n_chunks = a->chunks[0] ? 1 : 0;
  }
  a->used = 0;
  a->pass_bytes = 0;
}

size_t
dsk_arena_capacity (const dsk_arena *a)
{
  size_t n = 0;
  for (size_t i = 0; i < a->n_chunks; i++)
    n += dsk_buffer_size (a->chunks[i]);
  return n;
}

dsk_tensor
dsk_arena_tensor (dsk_arena *a, dsk_dtype dtype, int n_dims, const size_t *ne)
{
  dsk_tensor t = dsk_tensor_make (NULL, dtype, n_dims, ne, dsk_backend_get_device (a->be));
  size_t n = dsk_tensor_n_elements (&t), es = dsk_dtype_size (dtype), bytes;

  if (es == 0 || (n && n > (SIZE_MAX - ALIGN) / es)) {
    dsk_backend_fail (a->be, DSK_ERR_NOMEM, "arena: a tensor of %zu elements is too large", n);
    return t;
  }
  bytes = (n * es + ALIGN - 1) / ALIGN * ALIGN;
  if (a->n_chunks == 0 || a->used + bytes > dsk_buffer_size (a->chunks[a->n_chunks - 1])) {
    /* a new chunk: at least what this pass is expected to need from here on */
    size_t want = bytes;
    if (a->high_water > a->pass_bytes + bytes)
      want = a->high_water - a->pass_bytes;
    if (a->n_chunks == MAX_CHUNKS) {
      dsk_backend_fail (a->be, DSK_ERR_NOMEM, "arena: too many chunks in one pass");
      return t;
    }
    dsk_buffer *b = dsk_buffer_new (a->be, want);
    if (!b)
      return t;
    a->chunks[a->n_chunks++] = b;
    a->used = 0;
  }
  t = dsk_buffer_tensor (a->chunks[a->n_chunks - 1], a->used, dtype, n_dims, ne);
  a->used += bytes;
  a->pass_bytes += bytes;
  return t;
}

dsk_tensor
dsk_arena_1d (dsk_arena *a, dsk_dtype dtype, size_t n0)
{
  const size_t ne[1] = { n0 };
  return dsk_arena_tensor (a, dtype, 1, ne);
}

dsk_tensor
dsk_arena_2d (dsk_arena *a, dsk_dtype dtype, size_t n0, size_t n1)
{
  const size_t ne[2] = { n0, n1 };
  return dsk_arena_tensor (a, dtype, 2, ne);
}

dsk_tensor
dsk_arena_3d (dsk_arena *a, dsk_dtype dtype, size_t n0, size_t n1, size_t n2)
{
  const size_t ne[3] = { n0, n1, n2 };
  return dsk_arena_tensor (a, dtype, 3, ne);
}

dsk_tensor
dsk_arena_4d (dsk_arena *a, dsk_dtype dtype, size_t n0, size_t n1, size_t n2, size_t n3)
{
  const size_t ne[4] = { n0, n1, n2, n3 };
  return dsk_arena_tensor (a, dtype, 4, ne);
}
