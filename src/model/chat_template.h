// The model's chat template (tokenizer_config.json "chat_template") for ChatML-style models.
//
// Switchyard does not interpret Jinja. It recognises the templates below and renders exactly what
// they would render for conversations of system/user/assistant/tool messages without tool
// definitions; any other template is refused with an error naming the file:
//   * Qwen3 (has "<|im_start|>", "enable_thinking" and "reasoning_content"): optional leading
//     system turn; assistant turns after the last user query get "<think>\n{reasoning}\n</think>\n\n"
//     (the last one always, others only when they carry reasoning); earlier assistant turns are
//     stripped of their <think>...</think> part; consecutive tool messages are wrapped in one user
//     turn as <tool_response> blocks; the generation prompt is "<|im_start|>assistant\n", plus
//     "<think>\n\n</think>\n\n" when enable_thinking is false.
//   * Qwen2 / Qwen2.5 / plain ChatML (has "<|im_start|>", no "<think>"): every message as
//     "<|im_start|>{role}\n{content}<|im_end|>\n"; when the first message is not a system message
//     and the template has a literal default system turn ('<|im_start|>system\nYou are ...<|im_end|>'),
//     that turn comes first; tool messages as above when the template has <tool_response>.
// Templates with "<think>" but without Qwen3's enable_thinking logic (QwQ, R1 distills, the
// 2507 thinking models) are refused, since they differ in how they open the assistant turn.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sy {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool"
  std::string content;
  std::optional<std::string> reasoning_content;  // assistant's thinking, if kept separately
};

struct ChatOptions {
  bool add_generation_prompt = true;
  std::optional<bool> enable_thinking;  // unset = the template's default (Qwen3: thinking on)
};

class ChatTemplate {
 public:
  enum class Kind { ChatML, Qwen3 };
  // Reads "chat_template" (a string, or a list of {name, template} where "default" is used).
  // Throws naming `file` when it is missing or not a supported template.
  static ChatTemplate from_tokenizer_config(const nlohmann::json& j, const std::string& file);
  static ChatTemplate from_text(const std::string& text, const std::string& source);

  Kind kind() const { return kind_; }
  const std::string& default_system() const { return default_system_; }  // "" if none
  std::string render(const std::vector<ChatMessage>& messages, const ChatOptions& opt = {}) const;

 private:
  Kind kind_ = Kind::ChatML;
  std::string source_;
  std::string default_system_;
  bool tool_responses_ = false;
};

}  // namespace sy
