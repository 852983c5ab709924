// Reference Brown plain text for tests/test_train_data.cpp, made at test time by
// tests/reference/brown.mjs (the one definition of the plain-text rule, independent of our C++).
//
// Usage: node tests/reference/gen_brown.mjs --out DIR
// Writes DIR/brown/brown.txt (every file's plain text, concatenated in sorted file-name order,
// about 6 MB) and DIR/brown/manifest.json: { "files": [{ "name": "ca01", "bytes": N }, ...] }
// (the byte length of each file's part, in the same order).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brownFiles, brownPlain } from "./brown.mjs";

const i = process.argv.indexOf("--out");
if (i < 0 || !process.argv[i + 1]) {
  console.error("usage: node gen_brown.mjs --out DIR");
  process.exit(2);
}
const out = join(process.argv[i + 1], "brown");
mkdirSync(out, { recursive: true });
const files = brownFiles();
const parts = files.map((f) => Buffer.from(brownPlain([f]), "utf8"));
writeFileSync(join(out, "brown.txt"), Buffer.concat(parts));
writeFileSync(join(out, "manifest.json"),
              JSON.stringify({ files: files.map((f, k) => ({ name: f, bytes: parts[k].length })) }, null, 1));
