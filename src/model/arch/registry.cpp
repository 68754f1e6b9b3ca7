// Every architecture hearth knows, looked up by name.
#include "model/architecture.h"

namespace hearth {

const Architecture* find_architecture(const std::string& name) {
  for (const Architecture* a : {&kQwen3, &kQwen2, &kLlama})
    if (a->name == name) return a;
  return nullptr;
}

}  // namespace hearth
