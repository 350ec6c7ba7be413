/* sampling.h (internal): the random numbers of sampled generation (sampling.c). */
#ifndef DSOCR_SAMPLING_H
#define DSOCR_SAMPLING_H

#include <glib.h>

G_BEGIN_DECLS

/* xoshiro256** state, seeded through splitmix64. */
typedef struct {
  guint64 s[4];
} dsocr_rng;

void dsocr_rng_seed (dsocr_rng *r, guint64 seed);
/* A double uniform in [0, 1) with 53 random bits. */
double dsocr_rng_uniform (dsocr_rng *r);

G_END_DECLS

#endif /* DSOCR_SAMPLING_H */
