// IntrusiveList<T>: a doubly linked list whose links live in the elements
// (T derives from IntrusiveLink<T>), so that joining and leaving it cost no
// allocation and leaving needs no search. For per-request objects a session
// must be able to walk (all its streams, at GOAWAY or teardown) but finds
// by other means (HTTP/2: nghttp2's stream user data), where a map keyed by
// stream id cost a node malloc per stream and a hash lookup per callback
// (issue 18).
//
// Not owning: the list holds pointers; whoever owns the elements unlinks
// them before they die (the link asserts nothing: the owners' tests do).
// An element is in at most one list at a time through one link.
#pragma once

#include <cstddef>

namespace mulligan::core {

template <class T>
class IntrusiveList;

template <class T>
class IntrusiveLink {
 public:
  // In some list now.
  bool linked() const { return linked_; }

 protected:
  IntrusiveLink() = default;
  ~IntrusiveLink() = default;
  // A copy is a new object: it is in no list.
  IntrusiveLink(const IntrusiveLink&) {}
  IntrusiveLink& operator=(const IntrusiveLink&) { return *this; }

 private:
  friend class IntrusiveList<T>;
  T* prev_ = nullptr;
  T* next_ = nullptr;
  bool linked_ = false;
};

template <class T>
class IntrusiveList {
 public:
  IntrusiveList() = default;
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T* front() const { return head_; }
  // The element after `e` (null at the end).
  static T* next(const T* e) { return link(e)->next_; }

  void push_back(T* e) {
    IntrusiveLink<T>* l = link(e);
    l->prev_ = tail_;
    l->next_ = nullptr;
    l->linked_ = true;
    if (tail_) {
      link(tail_)->next_ = e;
    } else {
      head_ = e;
    }
    tail_ = e;
    ++size_;
  }
  // Unlinks `e`, which must be in this list.
  void remove(T* e) {
    IntrusiveLink<T>* l = link(e);
    if (l->prev_) {
      link(l->prev_)->next_ = l->next_;
    } else {
      head_ = l->next_;
    }
    if (l->next_) {
      link(l->next_)->prev_ = l->prev_;
    } else {
      tail_ = l->prev_;
    }
    l->prev_ = l->next_ = nullptr;
    l->linked_ = false;
    --size_;
  }
  // Unlinks and returns the first element (null when empty).
  T* pop_front() {
    T* e = head_;
    if (e) remove(e);
    return e;
  }

 private:
  static IntrusiveLink<T>* link(T* e) { return static_cast<IntrusiveLink<T>*>(e); }
  static const IntrusiveLink<T>* link(const T* e) { return static_cast<const IntrusiveLink<T>*>(e); }

  T* head_ = nullptr;
  T* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace mulligan::core
