/* views.h (internal): the one place that says how many embeddings a view becomes.
 *
 * A view of S x S pixels goes through 16-pixel patches and, for DeepSeek-OCR's encoder, two
 * stride-2 convolutions: an n x n grid of embeddings, n = ceil((S / 16) / 4). The prompt holds
 * one placeholder per embedding of the packed sequence (dsocr_vision_pack): the tiles as one
 * big grid with image_newline closing each row, the global view the same way, then
 * view_seperator. preprocess.c counts the placeholders with these functions and the vision
 * tower packs with them, so the two cannot disagree. */
#ifndef DSOCR_VIEWS_H
#define DSOCR_VIEWS_H

/* DeepSeek-OCR's encoder geometry. */
#define DSOCR_VIEW_PATCH 16
#define DSOCR_VIEW_DOWNSAMPLES 2

/* Side of the embedding grid of a @size x @size view through @patch-pixel patches and
 * @n_down stride-2 convs (each halving, rounding up); 0 when @size is not a positive multiple
 * of @patch. */
int dsocr_view_grid_side (int size, int patch, int n_down);

/* Embeddings of a packed image: n (n + 1) + 1 for the n x n global grid, plus
 * (m rows)(m cols + 1) for a cols x rows grid of m x m tiles (cols * rows > 0). -1 for negative
 * arguments or a count beyond G_MAXINT. */
int dsocr_view_n_tokens (int n, int m, int cols, int rows);

#endif /* DSOCR_VIEWS_H */
