/* Replays inputs through the fuzz target without libFuzzer, so that the committed corpus and the
 * regression inputs run in every build (gcc included) as an ordinary test:
 *
 *   fuzz_c_api_replay PATH...
 *
 * Each PATH is a file or a directory, whose files are replayed in name order (names starting
 * with '.' and README files are skipped). A contract violation aborts, like any other crash. Exit
 * status 0 once every input ran; 1 if a path cannot be read or no input was found. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int* argc, char*** argv);
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static int replay_file(const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  uint8_t* data = NULL;
  size_t size = 0, cap = 0;
  for (;;) {
    if (size == cap) {
      cap = cap ? 2 * cap : 4096;
      uint8_t* bigger = realloc(data, cap);
      if (!bigger) {
        fprintf(stderr, "replay: %s: out of memory\n", path);
        free(data);
        fclose(f);
        return -1;
      }
      data = bigger;
    }
    const size_t got = fread(data + size, 1, cap - size, f);
    size += got;
    if (got == 0) break;
  }
  const int failed = ferror(f);
  fclose(f);
  if (failed) {
    fprintf(stderr, "replay: %s: read error\n", path);
    free(data);
    return -1;
  }
  /* A copy of exactly `size` bytes, as libFuzzer gives, so that AddressSanitizer sees an overread. */
  uint8_t* exact = malloc(size ? size : 1);
  if (!exact) {
    free(data);
    return -1;
  }
  if (size) memcpy(exact, data, size);
  free(data);
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
  LLVMFuzzerTestOneInput(exact, size);
  free(exact);
  return 0;
}

static int by_name(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

static int skipped(const char* name) { return name[0] == '.' || strncmp(name, "README", 6) == 0; }

/* Returns the number of inputs replayed, or -1. */
static int replay_path(const char* path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) return replay_file(path) == 0 ? 1 : -1;
  DIR* dir = opendir(path);
  if (!dir) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  char** names = NULL;
  size_t n = 0, cap = 0;
  int result = 0;
  for (struct dirent* e; (e = readdir(dir)) != NULL;) {
    if (skipped(e->d_name)) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char** bigger = realloc(names, cap * sizeof *names);
      if (!bigger) {
        result = -1;
        break;
      }
      names = bigger;
    }
    const size_t len = strlen(path) + 1 + strlen(e->d_name) + 1;
    if (!(names[n] = malloc(len))) {
      result = -1;
      break;
    }
    snprintf(names[n++], len, "%s/%s", path, e->d_name);
  }
  closedir(dir);
  if (result == 0 && n > 1) qsort(names, n, sizeof *names, by_name);
  for (size_t i = 0; i < n; ++i) {
    if (result >= 0) {
      if (stat(names[i], &st) == 0 && S_ISDIR(st.st_mode)) continue;
      result = replay_file(names[i]) == 0 ? result + 1 : -1;
    }
    free(names[i]);
  }
  free(names);
  return result;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE-OR-DIRECTORY...\n", argv[0]);
    return 2;
  }
  LLVMFuzzerInitialize(&argc, &argv);
  int total = 0;
  for (int i = 1; i < argc; ++i) {
    const int n = replay_path(argv[i]);
    if (n < 0) return 1;
    total += n;
  }
  if (total == 0) {
    fprintf(stderr, "replay: no inputs found\n");
    return 1;
  }
  printf("replayed %d inputs without a contract violation\n", total);
  return 0;
}
