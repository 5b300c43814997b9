// The C API's error codes: their names and descriptions, and the mapping from the C++ runtime's
// exceptions to them, which is what keeps every exception on this side of the C boundary.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "handles.hpp"
#include "threadpool_start.hpp"

namespace {

// libuv describes codes it does not know with a string it allocates and never frees, so uvrt
// asks it only about codes it knows, and describes codes nobody knows into a per-thread buffer.
thread_local char unknown_code_text[48];

bool libuv_knows(int err) noexcept {
  char name[48];
  uv_err_name_r(err, name, sizeof name);
  return std::strncmp(name, "Unknown system error", 20) != 0;
}

// Negated errno values libuv has no code for (-EDOM...) still have a static description and name
// in glibc; elsewhere they fall back to "Unknown error N".
const char* errno_text(int err, bool name) noexcept {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (err < 0 && err > -4096) return name ? strerrorname_np(-err) : strerrordesc_np(-err);
#else
  (void)err;
  (void)name;
#endif
  return nullptr;
}

const char* describe_other(int err, bool name) noexcept {
  if (libuv_knows(err)) return name ? uv_err_name(err) : uv_strerror(err);
  if (const char* text = errno_text(err, name)) return text;
  std::snprintf(unknown_code_text, sizeof unknown_code_text, "Unknown error %d", err);
  return unknown_code_text;
}

}  // namespace

extern "C" {

const char* uvrt_strerror(int err) {
  switch (err) {
#define UVRT_STRERROR_CASE(name, value, text) \
  case UVRT_##name:                           \
    return text;
    UVRT_ERRNO_MAP(UVRT_STRERROR_CASE)
#undef UVRT_STRERROR_CASE
    case 0:
      return "success";
    default:
      return describe_other(err, false);
  }
}

const char* uvrt_err_name(int err) {
  switch (err) {
#define UVRT_ERR_NAME_CASE(name, value, text) \
  case UVRT_##name:                           \
    return "UVRT_" #name;
    UVRT_ERRNO_MAP(UVRT_ERR_NAME_CASE)
#undef UVRT_ERR_NAME_CASE
    case 0:
      return "OK";
    default:
      return describe_other(err, true);
  }
}

}  // extern "C"

namespace uvrt::c_api {

int error_of_current_exception() noexcept {
  try {
    throw;
  } catch (const detail::threadpool_conflict_error&) {
    return UVRT_EPOOLCONFLICT;
  } catch (const threadpool_size_error&) {
    return UVRT_EPOOLSIZE;
  } catch (const runtime_closed_error&) {
    return UVRT_ECLOSING;
  } catch (const queue_full_error&) {
    return UVRT_EQUEUEFULL;
  } catch (const cancelled_error&) {
    return UVRT_ECANCELED;
  } catch (const std::bad_alloc&) {
    return UVRT_ENOMEM;
  } catch (...) {
    // Misuse is checked before the C++ runtime is called, so anything else is a failure of
    // libuv (uv_loop_init, uv_async_init) or a bug in uvrt.
    return UVRT_EINTERNAL;
  }
}

namespace {

char lost_message[] = "(out of memory: message lost)";

}  // namespace

void free_message(uvrt_job_s* job) noexcept {
  if (job->message != lost_message) std::free(job->message);
  job->message = nullptr;
}

void set_message(uvrt_job_s* job, const char* text) noexcept {
  free_message(job);
  if (!text) return;
  const std::size_t size = std::strlen(text) + 1;
  job->message = static_cast<char*>(std::malloc(size));
  if (job->message) std::memcpy(job->message, text, size);
  else job->message = lost_message;
}

}  // namespace uvrt::c_api
