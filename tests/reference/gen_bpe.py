#!/usr/bin/python3
"""Reference byte-level BPE training for tests/test_bpe_trainer.cpp, written from the algorithm
(Sennrich et al. 2016 on bytes, as GPT-2) in plain Python, independent of the C++ trainer.

The rule (the same one src/train/bpe_trainer.h documents):
  * text is cut at the special tokens; the rest is pre-tokenized by Qwen2/Qwen3's Split regex
    (matches and the gaps between them are pieces); pieces are counted;
  * initial tokens: the 256 bytes, id i = the i-th byte of GPT-2's bytes_to_unicode list;
  * each step recounts every adjacent pair over all words (occurrences * word count), merges the
    pair with the highest count, ties -> smallest (left id, right id); the new token's bytes are
    left + right (a new id unless a token with those bytes exists); occurrences are replaced left
    to right without overlap; stop at vocab_size - len(specials) tokens, when no pair is left, or
    when the best count is below min_frequency.
Python's `re` has no \\p{L}: the corpora here are ASCII, where \\p{L} = [A-Za-z], \\p{N} = [0-9]
and \\s = [ \\t\\n\\v\\f\\r] (re.ASCII), so the translated pattern splits exactly as the original.

Usage: /usr/bin/python3 tests/reference/gen_bpe.py --out DIR
Writes DIR/bpe/CASE.txt (the training text, ASCII) and DIR/bpe/manifest.json:
  {"cases": [{"name", "text", "vocab_size", "min_frequency", "specials", "words", "unique_words",
              "vocab": [token string by id (byte-level chars)], "merges": [[left, right], ...],
              "merge_ids": [[l, r, result], ...], "merge_counts": [...], "stopped", "duplicates"}]}
"""
import argparse
import json
import os
import random
import re

# Qwen2/Qwen3 pattern with the Unicode classes written for ASCII text.
L = "A-Za-z"
N = "0-9"
PATTERN = re.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    rf"|[^\r\n{L}{N}]?[{L}]+"
    rf"|[{N}]"
    rf"| ?[^\s{L}{N}]+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+",
    re.ASCII,
)


def bytes_to_unicode():
    """GPT-2's table (openai/gpt-2 encoder.py): byte -> printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return bs, {b: chr(c) for b, c in zip(bs, cs)}


def pieces(text):
    out, last = [], 0
    for m in PATTERN.finditer(text):
        if m.start() == m.end():
            continue
        if m.start() > last:
            out.append(text[last:m.start()])
        out.append(m.group(0))
        last = m.end()
    if last < len(text):
        out.append(text[last:])
    return out


def word_counts(text, specials):
    counts = {}
    # Cut at the leftmost special token (longest first on equal positions).
    pos = 0
    while pos < len(text):
        hits = [(text.find(s, pos), -len(s), s) for s in specials if text.find(s, pos) >= 0]
        end = min(hits)[0] if hits else len(text)
        for p in pieces(text[pos:end]):
            b = p.encode("utf-8")
            counts[b] = counts.get(b, 0) + 1
        if not hits:
            break
        pos = end + len(min(hits)[2])
    return counts


def train(text, vocab_size, min_frequency, specials):
    order, table = bytes_to_unicode()
    tokens = [bytes([b]) for b in order]  # id -> bytes
    ids = {t: i for i, t in enumerate(tokens)}
    counts = word_counts(text, specials)
    words = {w: [ids[bytes([c])] for c in w] for w in counts}
    merges, stopped, duplicates = [], "vocab_size", 0
    while len(tokens) < vocab_size - len(specials):
        pairs = {}
        for w, sym in words.items():
            for a, b in zip(sym, sym[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + counts[w]
        if not pairs:
            stopped = "no pairs"
            break
        (a, b), c = min(pairs.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))
        if c < min_frequency:
            stopped = "min_frequency"
            break
        new = tokens[a] + tokens[b]
        if new in ids:
            duplicates += 1
        else:
            ids[new] = len(tokens)
            tokens.append(new)
        r = ids[new]
        merges.append((a, b, r, c))
        for w, sym in words.items():
            out, i = [], 0
            while i < len(sym):
                if i + 1 < len(sym) and sym[i] == a and sym[i + 1] == b:
                    out.append(r)
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            words[w] = out
    name = lambda t: "".join(table[x] for x in t)
    return {
        "words": sum(counts.values()),
        "unique_words": len(counts),
        "vocab": [name(t) for t in tokens],
        "merges": [[name(tokens[a]), name(tokens[b])] for a, b, _, _ in merges],
        "merge_ids": [[a, b, r] for a, b, r, _ in merges],
        "merge_counts": [c for _, _, _, c in merges],
        "stopped": stopped,
        "duplicates": duplicates,
    }


def synthetic_english(rng, n_words):
    """English-looking ASCII text: words from syllables, capitals, punctuation, numbers, contractions."""
    syl = ["th", "e", "an", "in", "er", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of", "ed", "is", "it",
           "al", "ar", "st", "to", "nt", "ng", "se", "ha", "ou", "le", "ve", "co", "me", "de", "hi", "ri", "ro", "ic"]
    out = []
    for i in range(n_words):
        w = "".join(rng.choice(syl) for _ in range(rng.choice([1, 1, 2, 2, 2, 3, 4])))
        r = rng.random()
        if r < 0.08:
            w = w.capitalize()
        elif r < 0.10:
            w = w.upper()
        elif r < 0.13:
            w = str(rng.randint(0, 2000))
        elif r < 0.16:
            w += rng.choice(["'s", "'ll", "'VE", "'d", "n't", "'re", "'M"])
        out.append(w)
        p = rng.random()
        if p < 0.07:
            out.append(rng.choice([" ,", ",", ".", " .", "!", "?", ";", " --", " ``", "''", " (", ")", " $", "%"]))
        if p < 0.02:
            out.append("\n")
        elif p < 0.025:
            out.append("\n\n")
        elif p < 0.03:
            out.append("   ")
        elif p < 0.035:
            out.append("\t")
        out.append(" ")
    return "".join(out)


def cases():
    rng = random.Random(20261122)
    tiny = ("Hello world! Hello, hello WORLD's end -- it's 2026 and we'll see.\n"
            "  The  cat's hat;  the cat\t sat.\n\nNumbers: 1234 56 7.\r\n"
            "She'd've said \"no\" <|endoftext|>then 'tis done<|im_start|>!!\n   \n")
    ties = " ".join(["ab", "cd", "ef", "gh", "ba", "dc"] * 5) + "\n"
    abc = " ".join("".join(rng.choice("abc") for _ in range(rng.randint(1, 9))) for _ in range(400))
    english = synthetic_english(rng, 6000)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    return [
        ("tiny", tiny, 256 + 3 + 80, 1, specials),
        ("ties", ties, 256 + 3 + 20, 2, specials),
        ("abc", abc, 256 + 3 + 150, 2, specials),
        ("english", english, 256 + 3 + 400, 2, specials),
        ("english_minfreq", english, 256 + 3 + 5000, 40, specials),
        ("no_specials", tiny, 256 + 40, 1, []),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = os.path.join(args.out, "bpe")
    os.makedirs(out, exist_ok=True)
    manifest = {"cases": []}
    for name, text, vocab_size, min_frequency, specials in cases():
        with open(os.path.join(out, name + ".txt"), "w", encoding="utf-8", newline="") as f:
            f.write(text)
        r = train(text, vocab_size, min_frequency, specials)
        manifest["cases"].append({"name": name, "text": name + ".txt", "vocab_size": vocab_size,
                                  "min_frequency": min_frequency, "specials": specials, **r})
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
