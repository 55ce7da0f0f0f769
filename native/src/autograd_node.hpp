// sekit's own autograd nodes (the fused BatchNorm+ReLU, max pooling, SyncBatchNorm), made the
// way the libtorch at hand holds nodes: a std::shared_ptr with torch::autograd::deleteNode up
// to PyTorch 2.11, a c10::intrusive_ptr in later releases. Chosen by the type of an Edge's
// function, not by a version number.
#pragma once

#include <torch/csrc/autograd/function.h>

#include <memory>
#include <type_traits>

namespace sekit {

// How the autograd engine holds a node: std::shared_ptr<Node> or c10::intrusive_ptr<Node>.
using NodePtr = decltype(torch::autograd::Edge::function);

namespace detail {
template <class T, class Held = NodePtr>
struct NodeMaker;

template <class T>
struct NodeMaker<T, std::shared_ptr<torch::autograd::Node>> {
  // deleteNode is found through T's base class (a dependent call), so a libtorch without it
  // never looks it up.
  static std::shared_ptr<T> make() { return std::shared_ptr<T>(new T(), [](T* p) { deleteNode(p); }); }
};

template <class T>
struct NodeMaker<T, c10::intrusive_ptr<torch::autograd::Node>> {
  static c10::intrusive_ptr<T> make() { return c10::make_intrusive<T>(); }
};
}  // namespace detail

// A new node of type T (a torch::autograd::Node), held as the engine holds nodes.
template <class T>
auto new_node() {
  static_assert(std::is_base_of_v<torch::autograd::Node, T>, "an autograd node");
  return detail::NodeMaker<T>::make();
}

}  // namespace sekit
