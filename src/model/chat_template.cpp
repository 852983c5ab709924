#include "model/chat_template.h"

#include "core/error.h"

namespace sy {
namespace {

bool has(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }
bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// Python str.lstrip/rstrip/strip with one character.
std::string lstrip(const std::string& s, char c) {
  size_t b = s.find_first_not_of(c);
  return b == std::string::npos ? "" : s.substr(b);
}
std::string rstrip(const std::string& s, char c) {
  size_t e = s.find_last_not_of(c);
  return e == std::string::npos ? "" : s.substr(0, e + 1);
}

// The text of a Jinja string literal's body: \n, \t, \\, \' and \" unescaped.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char c = s[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The default system turn of Qwen2/Qwen2.5 templates: a string literal
// '<|im_start|>system\n...<|im_end|>' with no expression inside.
std::string find_default_system(const std::string& t) {
  const std::string open = "<|im_start|>system\\n", close = "<|im_end|>";
  for (size_t pos = t.find(open); pos != std::string::npos; pos = t.find(open, pos + 1)) {
    size_t b = pos + open.size();
    size_t e = t.find(close, b);
    if (e == std::string::npos) break;
    std::string body = t.substr(b, e - b);
    if (body.empty() || has(body, "'") || has(body, "\"") || has(body, "{") || has(body, "+")) continue;
    return unescape(body);
  }
  return "";
}

}  // namespace

ChatTemplate ChatTemplate::from_tokenizer_config(const nlohmann::json& j, const std::string& file) {
  SY_CHECK(j.is_object(), "[chat] ", file, ": expected a JSON object");
  auto it = j.find("chat_template");
  SY_CHECK(it != j.end() && !it->is_null(), "[chat] ", file, ": no 'chat_template' field (the model has no chat template)");
  if (it->is_string()) return from_text(it->get<std::string>(), file);
  SY_CHECK(it->is_array(), "[chat] ", file, ": 'chat_template' must be a string or a list of {name, template}");
  for (const auto& e : *it) {
    if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
      return from_text(e["template"].get<std::string>(), file);
  }
  fail("[chat] ", file, ": 'chat_template' list has no entry named 'default'");
}

ChatTemplate ChatTemplate::from_text(const std::string& t, const std::string& source) {
  ChatTemplate ct;
  ct.source_ = source;
  auto snippet = [&] { return t.substr(0, 60) + (t.size() > 60 ? "..." : ""); };
  SY_CHECK(has(t, "<|im_start|>") && has(t, "<|im_end|>"), "[chat] ", source,
           ": unsupported chat template (only ChatML-style <|im_start|> templates of Qwen models are supported): ",
           snippet());
  ct.tool_responses_ = has(t, "<tool_response>");
  if (has(t, "<think>")) {
    SY_CHECK(has(t, "enable_thinking") && has(t, "reasoning_content") && has(t, "last_query_index"), "[chat] ", source,
             ": unsupported chat template: it uses <think> but is not the Qwen3 template (enable_thinking, "
             "reasoning_content)");
    ct.kind_ = Kind::Qwen3;
  } else {
    ct.default_system_ = find_default_system(t);
  }
  return ct;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& m, const ChatOptions& opt) const {
  SY_CHECK(!m.empty(), "[chat] ", source_, ": cannot render an empty conversation");
  const size_t n = m.size();
  for (size_t i = 0; i < n; ++i) {
    const auto& r = m[i].role;
    SY_CHECK(r == "system" || r == "user" || r == "assistant" || (r == "tool" && tool_responses_) ||
                 (kind_ == Kind::ChatML && !tool_responses_ && !r.empty()),
             "[chat] ", source_, ": message ", i, " has role '", r, "', which this template does not render");
  }
  std::string out;
  if (m[0].role == "system") {
    out += "<|im_start|>system\n" + m[0].content + "<|im_end|>\n";
  } else if (!default_system_.empty()) {
    out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
  }
  size_t last_query = n - 1;
  for (size_t i = n; i-- > 0;) {
    const auto& c = m[i].content;
    if (m[i].role == "user" && !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
      last_query = i;
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const ChatMessage& msg = m[i];
    if (i == 0 && msg.role == "system") continue;
    if (msg.role == "tool" && tool_responses_) {
      if (i == 0 || m[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + msg.content + "\n</tool_response>";
      if (i + 1 == n || m[i + 1].role != "tool") out += "<|im_end|>\n";
      continue;
    }
    if (kind_ == Kind::Qwen3 && msg.role == "assistant") {
      std::string content = msg.content, reasoning;
      if (msg.reasoning_content) {
        reasoning = *msg.reasoning_content;
      } else if (has(content, "</think>")) {
        const std::string& c = msg.content;
        content = lstrip(c.substr(c.rfind("</think>") + 8), '\n');
        std::string before = rstrip(c.substr(0, c.find("</think>")), '\n');
        size_t open = before.rfind("<think>");
        reasoning = lstrip(open == std::string::npos ? before : before.substr(open + 7), '\n');
      }
      out += "<|im_start|>assistant\n";
      if (i > last_query && (i + 1 == n || !reasoning.empty()))
        out += "<think>\n" + rstrip(lstrip(reasoning, '\n'), '\n') + "\n</think>\n\n" + lstrip(content, '\n');
      else
        out += content;
      out += "<|im_end|>\n";
      continue;
    }
    out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
  }
  if (opt.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (kind_ == Kind::Qwen3 && opt.enable_thinking.has_value() && !*opt.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

}  // namespace sy
