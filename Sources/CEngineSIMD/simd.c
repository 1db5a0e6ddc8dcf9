// Everything is static inline in the header; SwiftPM wants a source file per C target.
#include "CEngineSIMD.h"
