// Request and response messages for the callback API, allocated on
// protobuf arenas that are reset and reused: a warm server parses a request
// and builds its response without touching the heap, unless one outgrows
// the arena's first block.
#pragma once

#include <google/protobuf/arena.h>
#include <grpcpp/support/message_allocator.h>

#include <cstddef>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace seqserve {

template <typename Request, typename Response>
class ArenaMessagePool : public grpc::MessageAllocator<Request, Response> {
 public:
  // The first block of each arena; a batch-1 Classify fits many times.
  static constexpr size_t kBlockBytes = 8 * 1024;
  // Idle holders kept beyond this are freed.
  static constexpr size_t kMaxIdle = 1024;

  ~ArenaMessagePool() override {
    for (Holder* holder : idle_) delete holder;
  }

  grpc::MessageHolder<Request, Response>* AllocateMessages() override {
    Holder* holder = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (!idle_.empty()) {
        holder = idle_.back();
        idle_.pop_back();
      }
    }
    if (holder == nullptr) holder = new Holder(this);
    holder->Create();
    return holder;
  }

 private:
  class Holder : public grpc::MessageHolder<Request, Response> {
   public:
    explicit Holder(ArenaMessagePool* pool) : pool_(pool), arena_(Options(block_)) {}

    void Create() {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override {
      arena_.Reset();  // keeps the first block
      pool_->Return(this);
    }

   private:
    static google::protobuf::ArenaOptions Options(char* block) {
      google::protobuf::ArenaOptions options;
      options.initial_block = block;
      options.initial_block_size = kBlockBytes;
      return options;
    }

    ArenaMessagePool* pool_;
    alignas(16) char block_[kBlockBytes];
    google::protobuf::Arena arena_;
  };

  void Return(Holder* holder) {
    {
      absl::MutexLock lock(&mu_);
      if (idle_.size() < kMaxIdle) {
        idle_.push_back(holder);
        return;
      }
    }
    delete holder;
  }

  absl::Mutex mu_;
  std::vector<Holder*> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace seqserve
