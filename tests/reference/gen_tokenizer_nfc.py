#!/usr/bin/python3
"""NFC conformance data for the tokenizer's normalizer: Unicode's own NormalizationTest.txt (the
Unicode Character Database file Debian ships, compressed, in package unicode-data), copied to
OUT/tokenizer_nfc/NormalizationTest.txt for tests/test_tokenizer.cpp. The expected NFC forms in
it are Unicode's, not ours; the C++ test applies the file's own conformance rules."""
import argparse
import bz2
import os

ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("--ucd", default="/usr/share/unicode")
args = ap.parse_args()
src = os.path.join(args.ucd, "NormalizationTest.txt.bz2")
plain = os.path.join(args.ucd, "NormalizationTest.txt")
if os.path.exists(src):
    data = bz2.open(src, "rb").read()
elif os.path.exists(plain):
    data = open(plain, "rb").read()
else:
    raise SystemExit(f"{src} not found: install Debian package unicode-data (scripts/setup.sh does)")
out = os.path.join(args.out, "tokenizer_nfc")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "NormalizationTest.txt"), "wb") as f:
    f.write(data)
