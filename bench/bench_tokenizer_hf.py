#!/usr/bin/env python3
"""HF `tokenizers`' side of the tokenizer benchmark (bench/run-tokenizer.sh).

    python3 bench/bench_tokenizer_hf.py make-text OUT [--mb 4] [--seed S]
        writes a mixed UTF-8 text: the English / markdown / code / LaTeX of shared/seeds and
        shared/reference, generated Chinese, Japanese and Korean paragraphs, mixed-script lines,
        numbers, whitespace runs and emoji, paragraphs shuffled, numbers redrawn per copy.
    python3 bench/bench_tokenizer_hf.py time --tokenizer PATH --text FILE [--reps R]
        [--doc-bytes N]
        encodes FILE document by document (the same cut as bench-tokenizer.c: whole lines, at
        least N bytes each) with Tokenizer.encode(add_special_tokens=False), one thread
        (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false, no encode_batch), and prints one
        JSON line with MB/s and the FNV-1a hash of the ids, comparable with bench-tokenizer's.
"""
import argparse
import json
import os
import pathlib
import random
import re
import statistics
import struct
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = pathlib.Path(__file__).resolve().parent
SHARED = pathlib.Path(os.environ.get("DSOCR_SHARED_DIR", HERE.parent.parent / "shared"))

ZH = ("我们 模型 文档 识别 图像 文字 表格 公式 数据 训练 推理 语言 视觉 编码器 解码器 注意力 "
      "专家 路由 参数 计算 结果 方法 研究 系统 性能 速度 内存 输入 输出 页面 段落 标题 作者 "
      "深度 学习 网络 问题 时间 中国 世界 经济 社会 发展 技术 工作 人们 今天 明天 重要 可以 "
      "已经 因为 所以 但是 如果 这个 那个 一个 没有 非常").split()
JA = ("これは テスト です モデル 文書 画像 認識 日本語 カタカナ ひらがな 漢字 東京 研究 "
      "結果 表 数式 ページ").split()
KO = "이것은 테스트 입니다 모델 문서 이미지 인식 한국어 연구 결과 표 페이지".split()


def chinese_paragraph(rng):
    out = []
    for _ in range(rng.randint(3, 8)):
        out.append("".join(rng.choice(ZH) for _ in range(rng.randint(4, 14))))
        out.append(rng.choice("，。；：、！？"))
    return "".join(out)


def mixed_line(rng):
    parts = [
        lambda: rng.choice(ZH) + " " + rng.choice(["model", "page", "table", "OCR"]),
        lambda: "".join(rng.choice(JA) for _ in range(3)) + "。",
        lambda: " ".join(rng.choice(KO) for _ in range(3)),
        lambda: f"{rng.randint(0, 10**rng.randint(1, 9)):,}",
        lambda: f"{rng.random() * 1000:.3f}",
        lambda: rng.choice(["😀", "🎉", "👍🏽", "👨‍👩‍👧", "🇫🇷", "★", "→", "∑", "≤"]),
        lambda: " " * rng.randint(2, 12),
        lambda: rng.choice(["Привет мир", "Ελληνικά", "مرحبا", "नमस्ते", "café naïve"]),
        lambda: f"$x_{rng.randint(1, 9)}^{rng.randint(2, 5)} + \\frac{{a}}{{b}}$",
        lambda: f"| {rng.randint(1, 99)} | {rng.choice(ZH)} | {rng.random():.2f} |",
    ]
    return " ".join(rng.choice(parts)() for _ in range(rng.randint(3, 10)))


def make_text(out, mb, seed):
    rng = random.Random(seed)
    sources = sorted((SHARED / "seeds").glob("*.txt")) + sorted((SHARED / "reference").glob("*.md"))
    paragraphs = []
    for p in sources:
        paragraphs += [x for x in p.read_text(encoding="utf-8").split("\n\n") if x.strip()]
    target = int(mb * 1e6)
    chunks, size = [], 0
    while size < target:
        order = paragraphs[:]
        rng.shuffle(order)
        for para in order:
            para = re.sub(r"\d+", lambda m: str(rng.randint(0, 10 ** len(m.group()))), para)
            kind = rng.random()
            if kind < 0.25:
                para += "\n\n" + chinese_paragraph(rng)
            elif kind < 0.4:
                para += "\n" + mixed_line(rng)
            chunks.append(para + "\n\n")
            size += len(chunks[-1].encode("utf-8"))
            if size >= target:
                break
    pathlib.Path(out).write_text("".join(chunks), encoding="utf-8")
    print(f"wrote {out}: {size} bytes from {len(sources)} files")


def documents(data, doc_bytes):
    docs, start = [], 0
    for i, b in enumerate(data):
        if b == 0x0A and i + 1 - start >= doc_bytes:
            docs.append(data[start:i + 1].decode("utf-8"))
            start = i + 1
    if start != len(data):
        docs.append(data[start:].decode("utf-8"))
    return docs


def fnv_ids(h, ids):
    for v in ids:
        for byte in struct.pack("<I", v & 0xFFFFFFFF):
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def time_hf(path, text, reps, doc_bytes):
    import tokenizers
    from tokenizers import Tokenizer
    p = pathlib.Path(path)
    json_path = p / "tokenizer.json" if p.is_dir() else p
    data = pathlib.Path(text).read_bytes()
    docs = documents(data, doc_bytes)
    rates, ids_all = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        tok = Tokenizer.from_file(str(json_path))  # fresh word cache every rep
        t1 = time.perf_counter()
        encs = [tok.encode(d, add_special_tokens=False).ids for d in docs]
        t2 = time.perf_counter()
        rates.append(len(data) / 1e6 / (t2 - t1))
        ids_all = encs
    h = 0xCBF29CE484222325
    n = 0
    for ids in ids_all:
        h = fnv_ids(h, ids)
        n += len(ids)
    print(json.dumps({"impl": f"hf-tokenizers-{tokenizers.__version__}", "bytes": len(data),
                      "docs": len(docs), "ids": n, "hash": f"{h:016x}",
                      "best_MBps": round(max(rates), 3),
                      "median_MBps": round(statistics.median(rates), 3),
                      "load_s": round(t1 - t0, 3)}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-text")
    m.add_argument("out")
    m.add_argument("--mb", type=float, default=4.0)
    m.add_argument("--seed", type=int, default=7)
    t = sub.add_parser("time")
    t.add_argument("--tokenizer", required=True)
    t.add_argument("--text", required=True)
    t.add_argument("--reps", type=int, default=3)
    t.add_argument("--doc-bytes", type=int, default=4096)
    a = ap.parse_args()
    if a.cmd == "make-text":
        make_text(a.out, a.mb, a.seed)
    else:
        time_hf(a.tokenizer, a.text, a.reps, a.doc_bytes)


if __name__ == "__main__":
    main()
