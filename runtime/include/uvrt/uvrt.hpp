/// @file
/// uvrt: run blocking calls on libuv's thread pool and await their results on the loop.
///
/// The one header to include. Public names live in namespace uvrt; anything in uvrt::detail is
/// internal and may change without notice.

/// @namespace uvrt
/// uvrt's C++ API: runtime, future, task, the free functions that find the running runtime, and
/// the exceptions. Anything in uvrt::detail is internal and may change without notice.
#pragma once

#include "cancel.hpp"
#include "compose.hpp"
#include "errors.hpp"
#include "future.hpp"
#include "limiter.hpp"
#include "options.hpp"
#include "runtime.hpp"
#include "spawn.hpp"
#include "stats.hpp"
#include "task.hpp"
#include "threadpool.hpp"
#include "time.hpp"
