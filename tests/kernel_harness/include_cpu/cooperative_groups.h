// g++ stand-in for CUDA's <cooperative_groups.h>: the shared bodies use none of it.
#pragma once
namespace cooperative_groups {}
