#include "gridgate.h"

int gg_native_version(void) { return GG_NATIVE_VERSION; }
