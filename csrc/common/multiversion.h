// SGD_MULTIVERSION: a function compiled for AVX-512, AVX2 and baseline x86-64, the best
// picked at load time (GCC function multiversioning), since the build itself targets
// baseline x86-64. Elsewhere it compiles once.
// SGD_INLINE: a loop body written once as a template and inlined into each such clone
// (GCC cannot clone a template), so that every clone vectorises it for its own ISA.
#pragma once

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__linux__)
#define SGD_MULTIVERSION __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define SGD_MULTIVERSION
#endif

#define SGD_INLINE [[gnu::always_inline]] inline
