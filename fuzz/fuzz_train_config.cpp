// libFuzzer target for the training config stored in a checkpoint (train_state.safetensors
// metadata "train_config", read by `switchyard train --resume`): parse_train_config over the raw
// input. When it parses, validate() may only throw sy::Error, and the config written back as JSON
// must parse again to the same JSON (the config survives a save / resume cycle).
// Errors (sy::Error) are the expected outcome for malformed input; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "train/trainer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sy::train;
  TrainConfig c;
  try {
    c = parse_train_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const sy::Error&) {
    return 0;
  }
  try {
    c.validate();
  } catch (const sy::Error&) {
  }
  const std::string once = to_json(c).dump();
  try {
    if (to_json(parse_train_config(once, "fuzz round trip")).dump() != once) std::abort();
  } catch (const sy::Error&) {
    // a value JSON cannot hold (inf from an out-of-range float) is written as null and refused
  }
  return 0;
}
