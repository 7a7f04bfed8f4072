// IntrusiveList<T>: order, removal from anywhere, pop_front, and the
// walk-while-leaving pattern the HTTP/2 sessions use at teardown.
#include "sidecar/core/intrusive_list.h"

#include <gtest/gtest.h>

#include <vector>

namespace mulligan::core {
namespace {

struct Node : IntrusiveLink<Node> {
  explicit Node(int v) : value(v) {}
  int value;
};

std::vector<int> values(const IntrusiveList<Node>& l) {
  std::vector<int> out;
  for (Node* n = l.front(); n; n = IntrusiveList<Node>::next(n)) out.push_back(n->value);
  return out;
}

TEST(IntrusiveListTest, KeepsOrderAndUnlinksFromAnywhere) {
  Node a(1), b(2), c(3), d(4);
  IntrusiveList<Node> l;
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(l.front(), nullptr);
  for (Node* n : {&a, &b, &c, &d}) l.push_back(n);
  EXPECT_EQ(l.size(), 4u);
  EXPECT_EQ(values(l), (std::vector<int>{1, 2, 3, 4}));
  EXPECT_TRUE(b.linked());

  l.remove(&b);  // middle
  EXPECT_FALSE(b.linked());
  EXPECT_EQ(values(l), (std::vector<int>{1, 3, 4}));
  l.remove(&d);  // tail
  EXPECT_EQ(values(l), (std::vector<int>{1, 3}));
  l.remove(&a);  // head
  EXPECT_EQ(values(l), (std::vector<int>{3}));
  l.push_back(&b);  // a removed node can join again, at the end
  l.push_back(&a);
  EXPECT_EQ(values(l), (std::vector<int>{3, 2, 1}));
  EXPECT_EQ(l.size(), 3u);
}

TEST(IntrusiveListTest, PopFrontEmptiesItAndEveryNodeIsUnlinked) {
  Node a(1), b(2), c(3);
  IntrusiveList<Node> l;
  for (Node* n : {&a, &b, &c}) l.push_back(n);
  std::vector<int> seen;
  while (Node* n = l.pop_front()) {
    EXPECT_FALSE(n->linked());
    seen.push_back(n->value);
  }
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(l.pop_front(), nullptr);
}

TEST(IntrusiveListTest, TakingFromTheFrontWhileOthersLeaveReachesEachRemainingNodeOnce) {
  // Http2ClientSession::closeWith: each attempt is unlinked, then told; being
  // told may make another one leave (a hedge cancels its sibling). Every
  // node still linked is reached exactly once, a node that left is not.
  Node a(1), b(2), c(3), d(4);
  IntrusiveList<Node> l;
  for (Node* n : {&a, &b, &c, &d}) l.push_back(n);
  std::vector<int> told;
  while (Node* n = l.front()) {
    l.remove(n);
    told.push_back(n->value);
    if (n == &a) l.remove(&c);  // "telling" a made c leave
  }
  EXPECT_EQ(told, (std::vector<int>{1, 2, 4}));
}

TEST(IntrusiveListTest, ACopyIsInNoList) {
  Node a(1);
  IntrusiveList<Node> l;
  l.push_back(&a);
  Node copy(a);
  EXPECT_TRUE(a.linked());
  EXPECT_FALSE(copy.linked());
  EXPECT_EQ(values(l), (std::vector<int>{1}));
}

}  // namespace
}  // namespace mulligan::core
