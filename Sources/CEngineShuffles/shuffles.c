// The shuffles are static inline in the header; SwiftPM wants a source file per C target.
#include "CEngineShuffles.h"
