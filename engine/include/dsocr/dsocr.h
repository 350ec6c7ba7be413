/* dsocr.h: the gst-dsocr engine, a GStreamer-free C library that runs the DeepSeek-OCR model
 * family (and DeepSeek-V2 / V3.2 decoders) on the CPU and, when built with CUDA, on NVIDIA GPUs.
 *
 * Include this umbrella header; it pulls in every public part of the API. Each part documents
 * ownership in GStreamer's words: (transfer full) the caller owns the result and frees it with
 * the matching _free/_unref; (transfer none) it is borrowed and valid while its owner lives.
 * Failures are reported through GError in the DSOCR_ERROR domain (dsocr-error.h); no call
 * aborts or exits on bad input.
 */
#ifndef DSOCR_H
#define DSOCR_H

#include <dsocr/dsocr-error.h>
#include <dsocr/dsocr-backend.h>
#include <dsocr/dsocr-tensor.h>
#include <dsocr/dsocr-safetensors.h>
#include <dsocr/dsocr-checkpoint.h>
#include <dsocr/dsocr-config.h>
#include <dsocr/dsocr-image.h>
#include <dsocr/dsocr-preprocess.h>
#include <dsocr/dsocr-result.h>
#include <dsocr/dsocr-vision.h>
#include <dsocr/dsocr-tokenizer.h>
#include <dsocr/dsocr-ocr.h>
#include <dsocr/dsocr-indexer.h>
#include <dsocr/dsocr-model.h>
#include <dsocr/dsocr-session.h>
#include <dsocr/dsocr-generate.h>
#include <dsocr/dsocr-classify.h>

#endif /* DSOCR_H */
