/* gridgate native kernels: the public C API. One section per kernel; each section is also the
 * cffi cdef of that kernel (native/cdef/<kernel>.h) so the two cannot drift. */
#ifndef GRIDGATE_H
#define GRIDGATE_H

#include <stddef.h>
#include <stdint.h>

/* Bumped whenever a signature or a struct layout changes; gateway/estimate/_native.py refuses a
 * compiled module whose number differs from the one the Python side was written for. */
#define GG_NATIVE_VERSION 1

/* Status codes shared by every kernel. Kernels never abort and never print. */
#define GG_OK 0
#define GG_EINVAL (-1)   /* an argument is out of range (size, index, NULL) */
#define GG_ENOCONV (-2)  /* an iterative method did not converge within its cap */

int gg_native_version(void);

#endif
