#!/usr/bin/env python3
"""Writes a minimal byte-level BPE tokenizer.json (GPT-2 byte alphabet, no merges, so one token per
byte, plus <|endoftext|> = 256) for fast training tests: python3 tiny_tokenizer.py OUT.json"""
import json, os, sys

# GPT-2's byte table, from the BPE reference trainer (tests/reference/gen_bpe.py)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "reference"))
from gen_bpe import bytes_to_unicode  # noqa: E402

vocab = {c: i for i, c in enumerate(bytes_to_unicode()[1][b] for b in range(256))}
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
