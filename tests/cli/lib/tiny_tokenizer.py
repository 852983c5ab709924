#!/usr/bin/env python3
"""Writes a minimal byte-level BPE tokenizer.json (GPT-2 byte alphabet, no merges, so one token per
byte, plus <|endoftext|> = 256) for fast training tests: python3 tiny_tokenizer.py OUT.json"""
import json, sys

def bytes_to_unicode():  # GPT-2's table (openai/gpt-2 encoder.py)
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))

vocab = {c: i for i, c in enumerate(bytes_to_unicode()[b] for b in range(256))}
tok = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [{"id": 256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": None,
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
              "vocab": vocab, "merges": []},
}
json.dump(tok, open(sys.argv[1], "w"), ensure_ascii=False)
