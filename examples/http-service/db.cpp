// db: see db.hpp. Every sqlite3 handle has one owner at a time: the building function, or the
// pool, which lends a connection to one query and takes it back (through an RAII lease, so an
// exception cannot lose it). The mutex only guards the free list; the query runs outside it.
#include "db.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <utility>

namespace service {

namespace {

constexpr const char* query_sql = "select count(*), sum(v) from items where k between ?1 and ?1 + 200";

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw std::runtime_error(what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

void exec(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(db, sql);
}

// Closes a handle when the scope ends, whatever happened.
struct db_handle {
  sqlite3* db = nullptr;
  ~db_handle() { sqlite3_close(db); }
};
struct stmt_handle {
  sqlite3_stmt* stmt = nullptr;
  ~stmt_handle() { sqlite3_finalize(stmt); }
};

void open(db_handle& h, const std::string& path, int flags) {
  if (sqlite3_open_v2(path.c_str(), &h.db, flags, nullptr) != SQLITE_OK) fail(h.db, "opening " + path);
}

bool has_items_table(sqlite3* db) {
  stmt_handle s;
  if (sqlite3_prepare_v2(db, "select 1 from sqlite_master where type = 'table' and name = 'items'", -1, &s.stmt,
                         nullptr) != SQLITE_OK)
    fail(db, "reading the schema");
  int rc = sqlite3_step(s.stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail(db, "reading the schema");
  return rc == SQLITE_ROW;
}

void build(const std::string& path, std::int64_t rows) {
  db_handle h;
  open(h, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  // A scratch file until the rename: durability would only cost time.
  exec(h.db, "pragma journal_mode = off");
  exec(h.db, "pragma synchronous = off");
  exec(h.db, "create table items(k integer, v integer)");
  exec(h.db, "begin");
  {
    stmt_handle ins;
    if (sqlite3_prepare_v2(h.db, "insert into items(k, v) values (?1, ?2)", -1, &ins.stmt, nullptr) != SQLITE_OK)
      fail(h.db, "preparing the insert");
    for (std::int64_t i = 0; i < rows; ++i) {
      sqlite3_bind_int64(ins.stmt, 1, i % 10000);
      sqlite3_bind_int64(ins.stmt, 2, (i * 7919) % 1000);
      if (sqlite3_step(ins.stmt) != SQLITE_DONE) fail(h.db, "inserting rows");
      sqlite3_reset(ins.stmt);
    }
  }
  exec(h.db, "commit");
  exec(h.db, "create index items_k on items(k)");
}

}  // namespace

void create_database_if_missing(const std::string& path, std::int64_t rows) {
  if (::access(path.c_str(), F_OK) == 0) {
    db_handle h;
    open(h, path, SQLITE_OPEN_READONLY);
    if (!has_items_table(h.db)) throw std::runtime_error(path + " exists but has no table items");
    return;
  }
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::remove(tmp.c_str());
  try {
    build(tmp, rows);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("renaming " + tmp + " to " + path + " failed");
  }
}

db_pool::db_pool(const std::string& path, std::size_t connections) : conns_(connections) {
  try {
    for (connection& c : conns_) {
      // NOMUTEX: a connection is used by one thread at a time (the pool's lease), so SQLite's
      // own per-connection lock would be pure cost.
      if (sqlite3_open_v2(path.c_str(), &c.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK)
        fail(c.db, "opening " + path);
      if (sqlite3_prepare_v3(c.db, query_sql, -1, SQLITE_PREPARE_PERSISTENT, &c.stmt, nullptr) != SQLITE_OK)
        fail(c.db, "preparing the query on " + path);
      free_.push_back(&c);
    }
  } catch (...) {
    for (connection& c : conns_) {
      sqlite3_finalize(c.stmt);
      sqlite3_close(c.db);
    }
    throw;
  }
}

db_pool::~db_pool() {
  for (connection& c : conns_) {
    sqlite3_finalize(c.stmt);
    sqlite3_close(c.db);
  }
}

db_pool::connection* db_pool::take() {
  std::lock_guard lock(mutex_);
  if (free_.empty()) throw std::logic_error("no free database connection: more queries run than the limiter allows");
  connection* c = free_.back();
  free_.pop_back();
  return c;
}

void db_pool::give_back(connection* c) noexcept {
  std::lock_guard lock(mutex_);
  free_.push_back(c);  // cannot allocate: the capacity was reached when the pool was filled
}

query_result db_pool::query(std::int64_t key) {
  struct lease {
    db_pool& pool;
    connection* c;
    ~lease() {
      sqlite3_reset(c->stmt);
      pool.give_back(c);
    }
  } l{*this, take()};
  sqlite3_stmt* s = l.c->stmt;
  if (sqlite3_bind_int64(s, 1, key) != SQLITE_OK) fail(l.c->db, "binding the query");
  if (sqlite3_step(s) != SQLITE_ROW) fail(l.c->db, "running the query");
  // sum() of no rows is NULL, which sqlite3_column_int64 reads as 0.
  return query_result{sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1)};
}

}  // namespace service
