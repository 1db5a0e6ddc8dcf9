/// Engine: tensors, SIMD kernels and the thread pool.
