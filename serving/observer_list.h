// Several RequestObservers behind one: metrics, the access log and any
// observer a caller adds all see every call.
#pragma once

#include <vector>

#include "serving/payload_observer.h"
#include "serving/request_observer.h"

namespace seqserve {

class ObserverList : public RequestObserver {
 public:
  // Not owned; null is skipped. Add every observer before the first call.
  void Add(RequestObserver* observer) {
    if (observer != nullptr) observers_.push_back(observer);
  }
  bool empty() const { return observers_.empty(); }

  void OnStart(const CallRecord& call) override {
    for (RequestObserver* observer : observers_) observer->OnStart(call);
  }
  void OnEnd(const CallRecord& call) override {
    for (RequestObserver* observer : observers_) observer->OnEnd(call);
  }
  void OnShadow(const ShadowRecord& shadow) override {
    for (RequestObserver* observer : observers_) observer->OnShadow(shadow);
  }

 private:
  std::vector<RequestObserver*> observers_;
};

// Several PayloadObservers behind one.
class PayloadObserverList : public PayloadObserver {
 public:
  // Not owned; null is skipped. Add every observer before the first call.
  void Add(PayloadObserver* observer) {
    if (observer != nullptr) observers_.push_back(observer);
  }
  bool empty() const { return observers_.empty(); }

  void OnPayload(const PayloadRecord& record) override {
    for (PayloadObserver* observer : observers_) observer->OnPayload(record);
  }

 private:
  std::vector<PayloadObserver*> observers_;
};

}  // namespace seqserve
