// A model repository in a temporary directory, for server tests.
#pragma once

#include <cstdint>
#include <string>

namespace seqserve::testing {

class TestRepository {
 public:
  TestRepository();  // a fresh empty directory
  ~TestRepository();  // removes it

  TestRepository(const TestRepository&) = delete;
  TestRepository& operator=(const TestRepository&) = delete;

  const std::string& root() const { return root_; }

  // Copies reference model `reference` in as <model>/<version>/model.onnx.
  void AddReferenceVersion(const std::string& model, int64_t version,
                           const std::string& reference);
  // Writes <model>/config.textproto with the reference's labels plus `extra`.
  void WriteReferenceConfig(const std::string& model,
                            const std::string& reference,
                            const std::string& extra = "");
  // Writes `contents` to root/relative_path through a rename, so a poller
  // never sees half a file.
  void WriteFile(const std::string& relative_path, const std::string& contents);
  // Removes a file or a whole directory under root, at once as a poller
  // sees it (moved out in one rename, then deleted).
  void Remove(const std::string& relative_path);

 private:
  std::string root_;
};

}  // namespace seqserve::testing
