// Atomic file writes: the file at PATH is either the old one or the complete new one, whatever
// happens during the write (a crash, a kill, a full disk).
#pragma once
#include <string>
#include <string_view>

namespace sy {

// Writes `bytes` to PATH.tmp, fsyncs it, renames it over PATH and fsyncs PATH's folder. On error
// removes PATH.tmp and throws sy::Error naming the file: "[file] out/tokenizer.json.tmp: cannot
// create: Permission denied".
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace sy
