// `switchyard tokenize -m DIR -f FILE [--json]`: the token ids of a file, by the model's
// tokenizer.json (DIR may also be the tokenizer.json file itself).
// Output: the ids separated by spaces on one line, or with --json a JSON array.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "io/tokenizer.h"

namespace sy::cli {

void add_tokenize(CLI::App& app) {
  struct Opts {
    std::string model, file;
    bool json = false, special = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("tokenize", "print the token ids of a file (Hugging Face tokenizer.json BPE)");
  cmd->add_option("-m,--model", opts->model, "model directory holding tokenizer.json, or the tokenizer.json file")
      ->required();
  cmd->add_option("-f,--file", opts->file, "UTF-8 text file to tokenize")->required();
  cmd->add_flag("--json", opts->json, "print a JSON array instead of space-separated ids");
  cmd->add_flag("--add-special", opts->special, "apply the tokenizer's post-processor template (e.g. BOS)");
  cmd->callback([opts] {
    Tokenizer tok = Tokenizer::load(opts->model);
    std::ifstream f(opts->file, std::ios::binary);
    SY_CHECK(f, "[tokenize] ", opts->file, ": cannot open");
    std::ostringstream ss;
    ss << f.rdbuf();
    std::string text = ss.str();
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(text, opts->special);
    } catch (const Error& e) {
      fail("[tokenize] ", opts->file, ": ", e.what());
    }
    std::string out = opts->json ? "[" : "";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out += opts->json ? ", " : " ";
      out += std::to_string(ids[i]);
    }
    out += opts->json ? "]\n" : "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  });
}

}  // namespace sy::cli
