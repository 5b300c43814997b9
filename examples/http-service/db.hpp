// db: the service's blocking database, SQLite through its C API.
//
// The table is made deterministically (row i has k = i % 10000, v = (i * 7919) % 1000), so every
// peer that queries the same file does the same work and answers are known in advance. It is
// built in a temporary file renamed into place, so a reader never opens a half-built database.
//
// A pool holds N read-only connections, each with the one prepared query. SQLite connections
// must not be used by two threads at once, so a query takes a connection for its duration. The
// limiter in front of the pool has N tokens, so at most N queries run at once and taking a
// connection never waits; finding none free is a bug, reported as an exception (a 500), never a
// block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace service {

struct query_result {
  std::int64_t n = 0;    // rows with k in [key, key + 200]
  std::int64_t sum = 0;  // their sum of v; 0 for no rows
};

// Creates the database at `path` with `rows` rows unless the file exists; an existing file must
// hold the table items. Throws std::runtime_error naming what failed.
void create_database_if_missing(const std::string& path, std::int64_t rows);

class db_pool {
 public:
  // Opens `connections` read-only connections to `path`. Throws std::runtime_error.
  db_pool(const std::string& path, std::size_t connections);
  ~db_pool();
  db_pool(const db_pool&) = delete;
  db_pool& operator=(const db_pool&) = delete;

  // The query for `key` (id % 9000). Any thread; blocking. Throws std::runtime_error.
  query_result query(std::int64_t key);

 private:
  struct connection {
    sqlite3* db = nullptr;
    sqlite3_stmt* stmt = nullptr;
  };
  connection* take();
  void give_back(connection* c) noexcept;

  std::vector<connection> conns_;
  std::mutex mutex_;
  std::vector<connection*> free_;  // guarded by mutex_
};

}  // namespace service
