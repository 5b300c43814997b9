/** @file
 * UVRT_EXTERN, the mark of uvrt's exported symbols.
 *
 * @def UVRT_EXTERN
 * UVRT_EXTERN marks uvrt's public functions and classes.
 *
 * uvrt is built with hidden symbol visibility, so only what its headers mark with UVRT_EXTERN is
 * exported from the shared library; everything else stays internal and can change freely. The
 * mark is harmless in the static library and in the programs that include the headers. This
 * header is C as well as C++: the C API in <uvrt.h> uses it too. */
#ifndef UVRT_EXPORT_H
#define UVRT_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define UVRT_EXTERN __attribute__((visibility("default")))
#else
#define UVRT_EXTERN
#endif

#endif /* UVRT_EXPORT_H */
