/* gstdsclassify.h: dsclassify, DeepseekV2ForSequenceClassification on page text. */
#ifndef __GST_DS_CLASSIFY_H__
#define __GST_DS_CLASSIFY_H__

#include <gst/gst.h>

#include "gstdsocrmodelelement.h"

G_BEGIN_DECLS

#define GST_TYPE_DS_CLASSIFY (gst_ds_classify_get_type ())
G_DECLARE_FINAL_TYPE (GstDsClassify, gst_ds_classify, GST, DS_CLASSIFY,
    GstDsocrModelElement);

/**
 * GstDsClassifyPooling:
 * @GST_DS_CLASSIFY_POOLING_LAST_NON_PAD: the last token that is not padding (transformers)
 * @GST_DS_CLASSIFY_POOLING_BEFORE_FIRST_PAD: the token before the first padding token (the
 *   hub's modeling_deepseekv2.py)
 *
 * Which token's hidden state the score head reads; the two agree unless the text holds the
 * padding token.
 */
typedef enum
{
  GST_DS_CLASSIFY_POOLING_LAST_NON_PAD,
  GST_DS_CLASSIFY_POOLING_BEFORE_FIRST_PAD,
} GstDsClassifyPooling;

#define GST_TYPE_DS_CLASSIFY_POOLING (gst_ds_classify_pooling_get_type ())
G_GNUC_INTERNAL GType gst_ds_classify_pooling_get_type (void);

G_END_DECLS

#endif /* __GST_DS_CLASSIFY_H__ */
