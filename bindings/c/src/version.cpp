// uvrt_version() and uvrt_version_string(): the version this library was built as, read from the
// uvrt_version.h generated for this build. A program compiled against another uvrt_version.h
// gets this library's version, not its own UVRT_VERSION_*: that is their use.
#include "uvrt.h"

extern "C" {

unsigned int uvrt_version(void) { return UVRT_VERSION_HEX; }

const char* uvrt_version_string(void) { return UVRT_VERSION_STRING; }

}  // extern "C"
