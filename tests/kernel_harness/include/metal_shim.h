// Stand-in for MLX's Metal utils header so the captured Metal source compiles with g++.
// Address-space qualifiers vanish; Metal attributes ([[kernel]], [[buffer(i)]]) are ignored
// (-Wno-attributes); thread_position_in_grid arrives as a uint3 argument set by the launcher.
#pragma once
#include <cmath>
#include <cstdint>

#define constant
#define device

struct uint3 {
  unsigned x, y, z;
};

using float16_t = _Float16;

// Metal's math library, for the fused kernels (float only; they accumulate in float).
namespace metal {
inline float exp(float x) { return std::exp(x); }
}  // namespace metal
