/* The command line, the workload and the result check that the C and C++ peers share, so that
 * only the part written with each tool differs between them. The flags, their limits and their
 * errors follow uvrt-bench (../uvrt_bench.cpp), except that the pool size does not come from
 * UV_THREADPOOL_SIZE: every peer uses --threads, 4 by default, so all of them run the same pool.
 *
 * Job i returns i*2+1. The sum of N such values is N*N, which fits in 64 bits for the largest N
 * accepted (10^9), so the loop side can check its sum against the closed form.
 *
 * --compose (issue 13) changes how the peers that take it wait for their jobs: `timeout` wraps each
 * job in a timeout of PEER_COMPOSE_TIMEOUT_S that never fires, `when_all` runs the jobs in rounds of
 * W gathered together, each round awaited before the next is submitted. A peer states which it
 * takes (peer_parse_args_composing); the others refuse the flag as an unknown argument. */
#ifndef UVRT_PEER_COMMON_H
#define UVRT_PEER_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum peer_work_kind { PEER_WORK_EMPTY, PEER_WORK_SPIN, PEER_WORK_SLEEP };

/* How the jobs are awaited: none (the window of W, as uvrt-bench's to_thread mode), or --compose. */
enum peer_compose { PEER_COMPOSE_NONE, PEER_COMPOSE_TIMEOUT, PEER_COMPOSE_WHEN_ALL };
/* The values of --compose a peer takes, as a mask of these bits. */
#define PEER_TAKES_TIMEOUT (1u << PEER_COMPOSE_TIMEOUT)
#define PEER_TAKES_WHEN_ALL (1u << PEER_COMPOSE_WHEN_ALL)
/* --compose timeout's limit: long enough never to fire, as uvrt-bench's. */
#define PEER_COMPOSE_TIMEOUT_S 10

struct peer_settings {
  uint64_t jobs;
  enum peer_work_kind work;
  uint64_t work_us; /* duration of spin and sleep; unused for empty */
  uint64_t threads;
  uint64_t inflight;
  enum peer_compose compose;
};

#define PEER_MAX_JOBS UINT64_C(1000000000)
#define PEER_MAX_WORK_US UINT64_C(10000000) /* 10 s: longer is a typo, not a benchmark */
#define PEER_MAX_THREADS UINT64_C(1024)      /* libuv's own limit, kept for every peer */
#define PEER_MAX_INFLIGHT UINT64_C(1000000)

/* The --compose values in `takes` (PEER_TAKES_*), separated by `separator`. */
static inline const char* peer_compose_list(unsigned takes, const char* separator, char* buf, size_t size) {
  snprintf(buf, size, "%s%s%s", (takes & PEER_TAKES_TIMEOUT) ? "timeout" : "",
           (takes & PEER_TAKES_TIMEOUT) && (takes & PEER_TAKES_WHEN_ALL) ? separator : "",
           (takes & PEER_TAKES_WHEN_ALL) ? "when_all" : "");
  return buf;
}

static inline void peer_usage(FILE* out, const char* name, const char* summary, unsigned takes) {
  char values[32];
  fprintf(out,
          "usage: %s [--jobs N] [--work KIND] [--threads T] [--inflight W]%s%s%s\n"
          "\n"
          "%s\n"
          "\n"
          "  --jobs N       number of jobs, 1 to 1000000000 (default 2000)\n"
          "  --work KIND    empty | spin:US | sleep:US, US from 1 to 10000000 (default sleep:1000)\n"
          "  --threads T    worker threads, 1 to 1024 (default 4)\n"
          "  --inflight W   jobs in flight, 1 to 1000000 (default 64)\n",
          name, takes ? " [--compose " : "", takes ? peer_compose_list(takes, "|", values, sizeof values) : "",
          takes ? "]" : "", summary);
  if (takes) fprintf(out, "  --compose C    how the jobs are awaited (default: a window of W in flight):\n");
  if (takes & PEER_TAKES_TIMEOUT)
    fprintf(out, "                 timeout: W in flight, each in a timeout of %d s that never fires\n",
            PEER_COMPOSE_TIMEOUT_S);
  if (takes & PEER_TAKES_WHEN_ALL)
    fprintf(out, "                 when_all: rounds of W, each gathered and awaited before the next\n");
  fprintf(out, "  --help         print this and exit\n");
}

/* A command line the peer cannot run: name the flag and the value, show the usage, exit 2. */
static inline void peer_reject(const char* name, const char* summary, unsigned takes, const char* message) {
  fprintf(stderr, "%s: %s\n\n", name, message);
  peer_usage(stderr, name, summary, takes);
  exit(2);
}

/* A plain decimal integer in [lo, hi]: digits only, no sign, spaces or suffix. */
static inline int peer_parse_count(const char* text, uint64_t lo, uint64_t hi, uint64_t* out) {
  uint64_t value = 0;
  if (*text == '\0') return 0;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return 0;
    const uint64_t digit = (uint64_t)(*p - '0');
    if (value > (hi - digit) / 10) return 0;
    value = value * 10 + digit;
  }
  if (value < lo) return 0;
  *out = value;
  return 1;
}

static inline int peer_parse_work(const char* text, struct peer_settings* s) {
  if (strcmp(text, "empty") == 0) {
    s->work = PEER_WORK_EMPTY;
    s->work_us = 0;
    return 1;
  }
  if (strncmp(text, "spin:", 5) == 0 && peer_parse_count(text + 5, 1, PEER_MAX_WORK_US, &s->work_us)) {
    s->work = PEER_WORK_SPIN;
    return 1;
  }
  if (strncmp(text, "sleep:", 6) == 0 && peer_parse_count(text + 6, 1, PEER_MAX_WORK_US, &s->work_us)) {
    s->work = PEER_WORK_SLEEP;
    return 1;
  }
  return 0;
}

/* Accepts "--flag value" and "--flag=value". Prints the usage and exits 0 for --help, exits 2 for
 * a bad command line, and otherwise returns the settings. `takes` is the --compose values the peer
 * takes (PEER_TAKES_*); with none, --compose is an unknown argument. */
static inline struct peer_settings peer_parse_args_composing(const char* name, const char* summary, unsigned takes,
                                                             int argc, char** argv) {
  struct peer_settings s = {2000, PEER_WORK_SLEEP, 1000, 4, 64, PEER_COMPOSE_NONE};
  char message[512];
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      peer_usage(stdout, name, summary, takes);
      exit(0);
    }
    const char* eq = strchr(arg, '=');
    const int flag_len = eq ? (int)(eq - arg) : (int)strlen(arg);
    /* Every flag but --work and --compose takes a count; `count` stays NULL for those two. */
    uint64_t* count = NULL;
    uint64_t hi = 0;
    const int is_compose = takes != 0 && flag_len == 9 && strncmp(arg, "--compose", 9) == 0;
    if (flag_len == 6 && strncmp(arg, "--jobs", 6) == 0) {
      count = &s.jobs;
      hi = PEER_MAX_JOBS;
    } else if (flag_len == 9 && strncmp(arg, "--threads", 9) == 0) {
      count = &s.threads;
      hi = PEER_MAX_THREADS;
    } else if (flag_len == 10 && strncmp(arg, "--inflight", 10) == 0) {
      count = &s.inflight;
      hi = PEER_MAX_INFLIGHT;
    } else if (!is_compose && !(flag_len == 6 && strncmp(arg, "--work", 6) == 0)) {
      snprintf(message, sizeof message, "unknown argument \"%s\"", arg);
      peer_reject(name, summary, takes, message);
    }
    const char* value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (value == NULL) {
      snprintf(message, sizeof message, "%.*s: missing value", flag_len, arg);
      peer_reject(name, summary, takes, message);
    }
    if (is_compose) {
      if ((takes & PEER_TAKES_TIMEOUT) && strcmp(value, "timeout") == 0) {
        s.compose = PEER_COMPOSE_TIMEOUT;
      } else if ((takes & PEER_TAKES_WHEN_ALL) && strcmp(value, "when_all") == 0) {
        s.compose = PEER_COMPOSE_WHEN_ALL;
      } else {
        char values[32];
        snprintf(message, sizeof message, "--compose: invalid value \"%s\": expected %s", value,
                 peer_compose_list(takes, " or ", values, sizeof values));
        peer_reject(name, summary, takes, message);
      }
      continue;
    }
    if (count != NULL && !peer_parse_count(value, 1, hi, count)) {
      snprintf(message, sizeof message, "%.*s: invalid value \"%s\": expected a whole number from 1 to %llu",
               flag_len, arg, value, (unsigned long long)hi);
      peer_reject(name, summary, takes, message);
    }
    if (count == NULL && !peer_parse_work(value, &s)) {
      snprintf(message, sizeof message,
               "--work: invalid value \"%s\": expected empty, spin:US or sleep:US with US from 1 to %llu", value,
               (unsigned long long)PEER_MAX_WORK_US);
      peer_reject(name, summary, takes, message);
    }
  }
  return s;
}

/* For the peers that take no --compose. */
static inline struct peer_settings peer_parse_args(const char* name, const char* summary, int argc, char** argv) {
  return peer_parse_args_composing(name, summary, 0, argc, argv);
}

/* CLOCK_MONOTONIC is the steady clock behind uv_hrtime and std::chrono::steady_clock. */
static inline uint64_t peer_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* The blocking call a job makes: nothing, a busy CPU (like a parser), or a blocking sleep (like a
 * small query through a synchronous driver). */
static inline void peer_perform(const struct peer_settings* s) {
  switch (s->work) {
    case PEER_WORK_EMPTY: break;
    case PEER_WORK_SPIN: {
      const uint64_t until = peer_now_ns() + s->work_us * 1000;
      while (peer_now_ns() < until) {
      }
      break;
    }
    case PEER_WORK_SLEEP: {
      struct timespec left = {(time_t)(s->work_us / 1000000), (long)(s->work_us % 1000000) * 1000};
      while (nanosleep(&left, &left) != 0 && errno == EINTR) {
      }
      break;
    }
  }
}

static inline uint64_t peer_value_of(uint64_t i) { return i * 2 + 1; }

/* Prints the one-line result and returns 0, or explains on stderr why the results are wrong and
 * returns 1. `threads` overrides the pool size in that line for a peer without a pool. */
static inline int peer_report(const char* name, const struct peer_settings* s, const char* threads, uint64_t wall_ns,
                              uint64_t results, uint64_t sum) {
  const uint64_t expected = s->jobs * s->jobs;
  if (results != s->jobs || sum != expected) {
    fprintf(stderr, "%s: result check failed: %llu jobs, %llu results received, sum %llu, expected %llu\n", name,
            (unsigned long long)s->jobs, (unsigned long long)results, (unsigned long long)sum,
            (unsigned long long)expected);
    return 1;
  }
  char work[32];
  if (s->work == PEER_WORK_EMPTY) snprintf(work, sizeof work, "empty");
  else snprintf(work, sizeof work, "%s:%llu", s->work == PEER_WORK_SPIN ? "spin" : "sleep", (unsigned long long)s->work_us);
  char pool[24];
  if (threads == NULL) snprintf(pool, sizeof pool, "%llu", (unsigned long long)s->threads);
  const char* compose = s->compose == PEER_COMPOSE_TIMEOUT    ? " compose=timeout"
                        : s->compose == PEER_COMPOSE_WHEN_ALL ? " compose=when_all"
                                                              : "";
  printf("peer=%s jobs=%llu work=%s threads=%s inflight=%llu%s wall_s=%.3f ok\n", name, (unsigned long long)s->jobs,
         work, threads ? threads : pool, (unsigned long long)s->inflight, compose, (double)wall_ns / 1e9);
  return 0;
}

#endif
