// Stand-in for MLX's CUDA device header (mlx/backend/cuda/device/utils.cuh), which MLX's
// cuda_kernel includes first. Under nvcc it pulls CUDA's own half/bfloat16 types; under g++
// (emulation; float32, float16, int32) it defines the thread indices as globals the launcher
// sets before each call.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#else
#include <cmath>  // expf, for the fused kernels
struct dim3 {
  unsigned x, y, z;
};
inline dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __grid_constant__
using __half = _Float16;
#endif

namespace mlx::core::cu {
constexpr int MAX_NDIM = 10;
struct Shape {
  int32_t data[MAX_NDIM];
};
struct Strides {
  int64_t data[MAX_NDIM];
};
}  // namespace mlx::core::cu
