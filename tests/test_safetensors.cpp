// safetensors reader on bad input (every error names the file and the tensor or field), and the
// writer: round trip of every dtype and the atomic .tmp + rename protocol under a crash mid-write.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/safetensors.h"

namespace sy {
namespace {
namespace fs = std::filesystem;

// u64 LE header length, the header text, then `data_bytes` bytes of data (0, 1, 2, ...).
std::vector<uint8_t> st_bytes(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) b[size_t(i)] = uint8_t(n >> (8 * i));
  std::memcpy(b.data() + 8, header.data(), header.size());
  for (size_t i = 0; i < data_bytes; ++i) b[8 + header.size() + i] = uint8_t(i);
  return b;
}

// Parses `bytes` as file NAME and expects sy::Error containing every one of `parts`.
void expect_bad(const std::vector<uint8_t>& bytes, const std::vector<std::string>& parts, const char* name = "bad.st") {
  try {
    SafeTensors st(bytes.data(), bytes.size(), name);
    ADD_FAILURE() << "accepted: " << std::string(bytes.begin(), bytes.end());
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << "file name not in: " << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

std::string tmp_path(const std::string& file) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path d = fs::temp_directory_path() / str("sy_st_", ::getpid(), "_", info->name());
  fs::create_directories(d);
  return (d / file).string();
}

TEST(SafeTensorsBadInput, TooShortAndHeaderLength) {
  expect_bad({1, 2, 3}, {"too short", "3 bytes"});
  expect_bad({}, {"too short"});
  auto b = st_bytes("{}", 0);
  b[0] = 200;  // header length 200 > 2 bytes left
  expect_bad(b, {"header length 200", "past end of file"});
  std::vector<uint8_t> huge(16, 0xff);  // length 2^64-1
  expect_bad(huge, {"header length", "past end"});
}

TEST(SafeTensorsBadInput, GarbageHeader) {
  expect_bad(st_bytes("{\"a\": {\"dtype\": \"F32\", ", 8), {"not valid JSON"});
  expect_bad(st_bytes("\xff\xfe garbage", 8), {"not valid JSON"});
  expect_bad(st_bytes("[1, 2]", 0), {"not a JSON object"});
  expect_bad(st_bytes(R"({"a": 3})", 0), {"tensor a", "not an object"});
  expect_bad(st_bytes(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4), {"tensor a", "missing dtype"});
  expect_bad(st_bytes(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4), {"tensor a", "missing shape"});
  expect_bad(st_bytes(R"({"a": {"dtype": "F32", "shape": [1]}})", 4), {"tensor a", "data_offsets"});
  expect_bad(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4), {"tensor a", "data_offsets"});
  expect_bad(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, -4]}})", 4),
             {"tensor a", "data_offsets"});
  expect_bad(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": ["0", 4]}})", 4),
             {"tensor a", "data_offsets"});
  expect_bad(st_bytes(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4), {"tensor a", "shape"});
  expect_bad(st_bytes(R"({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4), {"tensor a", "shape"});
  expect_bad(st_bytes(R"({"a": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}})", 4), {"tensor a", "dtype"});
  expect_bad(st_bytes(R"({"__metadata__": {"k": 1}})", 0), {"__metadata__", "'k'"});
  expect_bad(st_bytes(R"({"__metadata__": [1]})", 0), {"__metadata__"});
}

TEST(SafeTensorsBadInput, OffsetsAndSizes) {
  expect_bad(st_bytes(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 12),
             {"tensor w", "offset 16 past end"});
  expect_bad(st_bytes(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 12), {"tensor w", "begin 8 > end 4"});
  expect_bad(st_bytes(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 24),
             {"tensor w", "[2, 3]", "needs 24 bytes", "span 20"});
  expect_bad(st_bytes(R"({"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 16]}})", 16),
             {"tensor w", "BF16", "needs 8 bytes"});
  expect_bad(st_bytes(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 16]}})", 16),
             {"tensor w", "overflow"});
  expect_bad(st_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12),
             {"tensors a and b overlap"});
  expect_bad(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                          "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4),
             {"overlap", "a", "b"});
  // Zero-size tensors may share an offset with anything.
  auto ok = st_bytes(R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
                         "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 8);
  SafeTensors st(ok.data(), ok.size(), "ok.st");
  EXPECT_EQ(st.get("a").nbytes, 0u);
  EXPECT_EQ(st.get("b").file_offset, ok.size() - 8);
}

TEST(SafeTensorsBadInput, UnknownDtype) {
  expect_bad(st_bytes(R"({"q": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4),
             {"tensor q", "unsupported dtype F8_E4M3"});
  expect_bad(st_bytes(R"({"q": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}})", 4), {"tensor q", "f32"});
}

TEST(SafeTensorsBadInput, MissingTensorAndWrongShape) {
  auto b = st_bytes(R"({"layer.0.w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})", 16);
  SafeTensors st(b.data(), b.size(), "model.safetensors");
  try {
    st.get("layer.1.w");
    ADD_FAILURE() << "missing tensor accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors: missing tensor layer.1.w"), std::string::npos) << e.what();
  }
  try {
    st.get("layer.0.w", {4});
    ADD_FAILURE() << "wrong shape accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors: tensor layer.0.w has shape [2, 2], expected [4]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(&st.get("layer.0.w", {2, 2}), st.find("layer.0.w"));
}

TEST(SafeTensorsBadInput, TruncatedFileOnDisk) {
  const std::string p = tmp_path("trunc.safetensors");
  std::vector<float> w(64, 1.5f);
  write_safetensors(p, {{"w", DType::F32, {8, 8}, w.data()}});
  const auto full = fs::file_size(p);
  for (auto keep : {full - 1, full - 200, uintmax_t(12), uintmax_t(5), uintmax_t(0)}) {
    fs::resize_file(p, keep);
    try {
      SafeTensors st(p);
      ADD_FAILURE() << "truncated to " << keep << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
  fs::remove_all(fs::path(p).parent_path());
  try {
    SafeTensors st(p);
    ADD_FAILURE() << "missing file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(SafeTensorsWrite, RoundTripEveryDtypeAndMetadata) {
  const std::string p = tmp_path("rt.safetensors");
  std::vector<float> f32 = {1.0f, -2.5f, 3.25f, 1e-30f, -0.0f, 65504.0f};
  std::vector<uint16_t> bf16, f16;
  for (float v : f32) bf16.push_back(f32_to_bf16(v)), f16.push_back(f32_to_f16(v));
  std::vector<int32_t> i32 = {-7, 0, 2147483647};
  std::vector<int64_t> i64 = {-(int64_t(1) << 40), 5};
  std::vector<uint8_t> u8 = {0, 255, 17};
  write_safetensors(p,
                    {{"f32", DType::F32, {2, 3}, f32.data()},
                     {"bf16", DType::BF16, {6}, bf16.data()},
                     {"f16", DType::F16, {3, 2}, f16.data()},
                     {"i32", DType::I32, {3}, i32.data()},
                     {"i64", DType::I64, {1, 2}, i64.data()},
                     {"u8", DType::U8, {3}, u8.data()},
                     {"empty", DType::F32, {0, 4}, nullptr},
                     {"scalar", DType::F32, {}, f32.data()}},
                    {{"format", "pt"}, {"note", "x y"}});
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  SafeTensors st(p);
  EXPECT_EQ(st.metadata().at("format"), "pt");
  EXPECT_EQ(st.metadata().at("note"), "x y");
  EXPECT_EQ(st.names().size(), 8u);
  EXPECT_EQ(st.get("f32", {2, 3}).dtype, DType::F32);
  EXPECT_EQ(st.to_f32("f32"), f32);
  EXPECT_EQ(std::memcmp(st.get("bf16").data, bf16.data(), 12), 0);
  EXPECT_EQ(std::memcmp(st.get("f16").data, f16.data(), 12), 0);
  EXPECT_EQ(st.get("f16").dtype, DType::F16);
  EXPECT_EQ(std::memcmp(st.get("i32").data, i32.data(), 12), 0);
  EXPECT_EQ(std::memcmp(st.get("i64").data, i64.data(), 16), 0);
  EXPECT_EQ(st.to_f32("u8"), (std::vector<float>{0, 255, 17}));
  EXPECT_EQ(st.get("empty", {0, 4}).nbytes, 0u);
  EXPECT_TRUE(st.to_f32("empty").empty());  // regression: was memcpy(nullptr, ..., 0), found by fuzzing
  EXPECT_EQ(st.get("scalar").numel(), 1);
  EXPECT_EQ(st.to_f32("scalar"), std::vector<float>{1.0f});
  // Data section alignment: the header is padded so the data starts at a multiple of 8.
  EXPECT_EQ(st.get("f32").file_offset % 8, 0u);
  fs::remove_all(fs::path(p).parent_path());
}

// Runs write_safetensors(path, 1 MiB tensor) in a child whose file-size limit is 64 KiB, so the
// write fails part-way. ignore_sigxfsz=false: the kernel kills the child (SIGXFSZ) in the middle
// of the write, like a crash. true: write() returns EFBIG and the writer must throw. Returns the
// wait status.
int write_in_limited_child(const std::string& path, bool ignore_sigxfsz) {
  pid_t pid = ::fork();
  if (pid == 0) {
    struct rlimit core {0, 0};
    ::setrlimit(RLIMIT_CORE, &core);
    struct rlimit fsz {65536, 65536};
    ::setrlimit(RLIMIT_FSIZE, &fsz);
    if (ignore_sigxfsz) ::signal(SIGXFSZ, SIG_IGN);
    std::vector<float> big(1 << 18, 2.0f);
    try {
      write_safetensors(path, {{"new", DType::F32, {int64_t(big.size())}, big.data()}});
    } catch (const Error& e) {
      bool named = std::string(e.what()).find(path + ".tmp") != std::string::npos;
      ::_exit(named ? 42 : 43);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(SafeTensorsWrite, CrashMidWriteLeavesOldFileIntact) {
  const std::string p = tmp_path("atomic.safetensors");
  std::vector<float> old = {1, 2, 3, 4};
  write_safetensors(p, {{"old", DType::F32, {4}, old.data()}});
  const auto old_size = fs::file_size(p);

  int status = write_in_limited_child(p, false);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child was not killed mid-write (status " << status << ")";
  EXPECT_EQ(WTERMSIG(status), SIGXFSZ);
  EXPECT_TRUE(fs::exists(p + ".tmp"));  // the partial temporary file is what the crash left
  EXPECT_EQ(fs::file_size(p), old_size);
  {
    SafeTensors st(p);
    EXPECT_EQ(st.names(), std::vector<std::string>{"old"});
    EXPECT_EQ(st.to_f32("old"), old);
  }

  status = write_in_limited_child(p, true);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 42) << "the writer did not throw an error naming " << p << ".tmp";
  EXPECT_FALSE(fs::exists(p + ".tmp"));  // a failed write removes its temporary file
  SafeTensors st(p);
  EXPECT_EQ(st.to_f32("old"), old);

  // A later successful write replaces both the stale .tmp and the file.
  write_safetensors(p, {{"new", DType::F32, {2}, old.data()}});
  EXPECT_EQ(SafeTensors(p).names(), std::vector<std::string>{"new"});
  fs::remove_all(fs::path(p).parent_path());
}

}  // namespace
}  // namespace sy
