// config: see config.hpp. One table of flags, each with its range, so the parser, the ranges and
// the usage text cannot drift apart.
#include "config.hpp"

#include <charconv>
#include <string_view>
#include <system_error>

namespace service {

const char* const usage =
    "usage: uvrt-http-service [flags]\n"
    "  --port N               TCP port on 127.0.0.1 (0: a free one)        [8080]\n"
    "  --db PATH              SQLite file, created if missing            [uvrt-service.db]\n"
    "  --rows N               rows when creating the database              [200000]\n"
    "  --threads N            libuv pool size                              [4]\n"
    "  --connections N        SQLite connections = query limiter tokens    [threads]\n"
    "  --direct               run queries on the loop thread (anti-pattern)\n"
    "  --query-timeout-ms N   a query past this gets 504                   [1000]\n"
    "  --header-timeout-ms N  close a connection waiting this long for a request [5000]\n"
    "  --drain-timeout-ms N   on SIGINT/SIGTERM, time for requests in flight [5000]\n"
    "  --max-header-bytes N   request line + headers over this: 431        [8192]\n"
    "  --max-body-bytes N     a body over this: 413                        [1048576]\n"
    "  --max-queued N         queries waiting at once before 503 (0: no bound) [1024]\n"
    "  --query-delay-ms N     test hook: each query sleeps this long first [0]\n"
    "  --create-only          create the database if missing, then exit\n"
    "  --help                 this text\n";

namespace {

std::uint64_t number(std::string_view flag, std::string_view text, std::uint64_t min, std::uint64_t max) {
  std::uint64_t v = 0;
  bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (!digits || ec != std::errc{} || end != text.data() + text.size() || v < min || v > max)
    throw flag_error(std::string(flag) + ": expected a whole number from " + std::to_string(min) + " to " +
                     std::to_string(max) + ", got \"" + std::string(text) + "\"");
  return v;
}

constexpr std::uint64_t max_ms = 24ull * 3600 * 1000;  // a day: beyond it, a typo

}  // namespace

config parse_flags(int argc, char** argv) {
  config c;
  bool connections_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--direct") { c.direct = true; continue; }
    if (flag == "--create-only") { c.create_only = true; continue; }
    if (flag == "--help") { c.help = true; continue; }
    if (i + 1 >= argc) {
      if (flag.starts_with("--")) throw flag_error(std::string(flag) + ": missing value (or unknown flag)");
      throw flag_error("unexpected argument \"" + std::string(flag) + "\"");
    }
    std::string_view value = argv[i + 1];
    auto ms = [&](std::uint64_t min) { return std::chrono::milliseconds(number(flag, value, min, max_ms)); };
    if (flag == "--port") c.port = static_cast<int>(number(flag, value, 0, 65535));
    else if (flag == "--db") {
      if (value.empty()) throw flag_error("--db: empty path");
      c.db = value;
    } else if (flag == "--rows") c.rows = static_cast<std::int64_t>(number(flag, value, 0, 1'000'000'000));
    else if (flag == "--threads") c.threads = static_cast<int>(number(flag, value, 1, 1024));
    else if (flag == "--connections") {
      c.connections = number(flag, value, 1, 1024);
      connections_given = true;
    } else if (flag == "--query-timeout-ms") c.query_timeout = ms(1);
    else if (flag == "--header-timeout-ms") c.header_timeout = ms(1);
    else if (flag == "--drain-timeout-ms") c.drain_timeout = ms(0);
    else if (flag == "--max-header-bytes") c.max_header_bytes = number(flag, value, 64, 1 << 20);
    else if (flag == "--max-body-bytes") c.max_body_bytes = number(flag, value, 0, 1ull << 40);
    else if (flag == "--max-queued") c.max_queued = number(flag, value, 0, 1 << 24);
    else if (flag == "--query-delay-ms") c.query_delay = ms(0);
    else throw flag_error("unknown flag \"" + std::string(flag) + "\"");
    ++i;
  }
  if (!connections_given) c.connections = static_cast<std::size_t>(c.threads);
  return c;
}

}  // namespace service
