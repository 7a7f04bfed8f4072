// mulligan-sidecar: wiring only — flags, workers, signals.
#include <getopt.h>
#include <signal.h>
#include <unistd.h>


#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proto-free-config/layout.h"
#include "sidecar/admin/admin_server.h"
#include "proto-free-config/duration.h"
#include "sidecar/core/logging.h"
#include "sidecar/net/fd_limits.h"
#include "sidecar/stream/access_log_writer.h"
#include "sidecar/worker/shared_state.h"
#include "sidecar/worker/worker.h"

namespace mulligan {
namespace {

constexpr const char* kUsage = R"(usage: mulligan-sidecar [options]

  --shm NAME            policy segment: POSIX shm name or absolute tmpfs path
                        (default mulligan-policy)                        [MULLIGAN_SHM]
  --outbound ADDR:PORT  where redirected/proxied traffic arrives; repeat it
                        to listen on more than one address (e.g. also
                        [::1]:15001, where ip6tables redirects IPv6); the
                        variable takes a comma-separated list
                        (default 127.0.0.1:15001; port 0 picks one)      [MULLIGAN_OUTBOUND]
  --admin ADDR:PORT     admin endpoint (default 127.0.0.1:15000)          [MULLIGAN_ADMIN]
  --workers N           worker threads (default 1)                       [MULLIGAN_WORKERS]
  --drain-timeout DUR   graceful stop limit in seconds (default 10)      [MULLIGAN_DRAIN_TIMEOUT]
  --access-log WHERE    "-" (stdout, default), a file path, or "off"     [MULLIGAN_ACCESS_LOG]
  --access-log-filter all|notable
                        which requests get a line: every one, or (the
                        default) the ones worth reading: retried or hedged,
                        a retry refused, a timeout, answered by the sidecar
                        itself, 5xx, a failed gRPC status. Lines are written
                        by a thread of their own; when the destination
                        cannot keep up they are dropped and counted
                        (mulligan_access_log_dropped_total), never waited
                        for                       [MULLIGAN_ACCESS_LOG_FILTER]
  --log-level LEVEL     debug, info, warn, error (default info)          [MULLIGAN_LOG_LEVEL]
  --max-upstream-connections N
                        open HTTP/1 connections per upstream address, per
                        worker (in use + idle; default 1024, 0 = no cap);
                        HTTP/2: connections and calls in flight;
                        beyond it a call is answered 503 with
                        x-mulligan-overloaded: upstream-connections
                                                [MULLIGAN_MAX_UPSTREAM_CONNECTIONS]
  --max-connections N   connections from the app each worker holds at once;
                        beyond it the worker stops accepting and new
                        connections wait in the kernel's listen backlog
                        until one closes (0 = no bound). Default: from
                        RLIMIT_NOFILE, two descriptors per connection after
                        a reserve (see README)       [MULLIGAN_MAX_CONNECTIONS]
  --request-header-timeout DUR
                        longest wait for a request head: from a new
                        connection's accept, and from the first byte of
                        each later request, to the head's end. Expired: 408
                        and close if a request had begun, else close
                        (default 10s; 0 = none)  [MULLIGAN_REQUEST_HEADER_TIMEOUT]
  --io-uring on|off     receive on HTTP/1 sockets through io_uring where the
                        kernel allows it (default on; falls back to epoll,
                        saying so once, e.g. under a seccomp profile that
                        refuses io_uring)                    [MULLIGAN_IO_URING]
  --aio on|off          on the epoll path, send what HTTP/1 sockets send in
                        one loop iteration with one io_submit (Linux AIO,
                        which RuntimeDefault seccomp allows) instead of one
                        send(2) each (default on)                 [MULLIGAN_AIO]
  --dns-server ADDR:PORT the name server for upstream names, instead of the
                        system's (/etc/resolv.conf); a numeric address
                                                           [MULLIGAN_DNS_SERVER]
  --dns-ttl DUR         how long a name's addresses are used before they are
                        looked up again, in the background: calls go on with
                        the old ones until the answer comes (default 5s);
                        a failed lookup is remembered 2s (or this, if shorter)
                                                              [MULLIGAN_DNS_TTL]
  --help, --version

On start it prints "listening outbound ADDR:PORT" (one line per address) and
"listening admin ADDR:PORT" to stderr. When accept(2) runs out of file
descriptors a worker pauses accepting and retries with back-off, logging once
when that begins and once when it ends. SIGTERM (or POST /drain) stops
accepting, finishes in-flight requests up to the drain timeout, and exits 0.
)";

struct Flags {
  std::string shm = "mulligan-policy";
  std::vector<std::string> outbound = {"127.0.0.1:15001"};
  std::string admin = "127.0.0.1:15000";
  int workers = 1;
  double drain_timeout_s = 10;
  std::string access_log = "-";
  std::string access_log_filter = "notable";
  std::string log_level = "info";
  long long max_upstream_connections = 1024;
  std::string io_uring = "on";
  std::string aio = "on";
  long long max_connections = -2;  // -2: not given (derived from RLIMIT_NOFILE)
  std::string request_header_timeout = "10s";
  std::string dns_server;
  std::string dns_ttl = "5s";
};

// "a,b , c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    std::string item = s.substr(start, comma - start);
    size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
    start = comma + 1;
  }
  return out;
}

// A duration as the policy writes them ("10s", "300ms"), or "0" for none.
std::optional<int64_t> parseTimeout(const std::string& s) {
  if (s == "0") return 0;
  return pfc::parseDuration(s);
}

std::string envOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// A non-negative decimal count; -1 for anything else (so that "abc" is an
// error, not a silent 0 = "no cap").
long long parseCount(const char* s) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s, &end, 10);
  if (end == s || *end != '\0' || errno != 0 || v < 0) return -1;
  return v;
}

int parseFlags(int argc, char** argv, Flags* f) {
  f->shm = envOr("MULLIGAN_SHM", f->shm);
  if (const char* v = std::getenv("MULLIGAN_OUTBOUND"); v && *v) f->outbound = splitList(v);
  f->admin = envOr("MULLIGAN_ADMIN", f->admin);
  f->workers = std::atoi(envOr("MULLIGAN_WORKERS", std::to_string(f->workers)).c_str());
  f->drain_timeout_s = std::atof(envOr("MULLIGAN_DRAIN_TIMEOUT", std::to_string(f->drain_timeout_s)).c_str());
  f->access_log = envOr("MULLIGAN_ACCESS_LOG", f->access_log);
  f->access_log_filter = envOr("MULLIGAN_ACCESS_LOG_FILTER", f->access_log_filter);
  f->log_level = envOr("MULLIGAN_LOG_LEVEL", f->log_level);
  f->max_upstream_connections =
      parseCount(envOr("MULLIGAN_MAX_UPSTREAM_CONNECTIONS", std::to_string(f->max_upstream_connections)).c_str());
  f->io_uring = envOr("MULLIGAN_IO_URING", f->io_uring);
  f->aio = envOr("MULLIGAN_AIO", f->aio);
  if (const char* v = std::getenv("MULLIGAN_MAX_CONNECTIONS"); v && *v) f->max_connections = parseCount(v);
  f->request_header_timeout = envOr("MULLIGAN_REQUEST_HEADER_TIMEOUT", f->request_header_timeout);
  f->dns_server = envOr("MULLIGAN_DNS_SERVER", f->dns_server);
  f->dns_ttl = envOr("MULLIGAN_DNS_TTL", f->dns_ttl);
  bool outbound_flag_seen = false;  // the first --outbound replaces the default (or the variable's list)
  static const option kLong[] = {
      {"shm", required_argument, nullptr, 's'},           {"outbound", required_argument, nullptr, 'o'},
      {"admin", required_argument, nullptr, 'a'},         {"workers", required_argument, nullptr, 'w'},
      {"drain-timeout", required_argument, nullptr, 'd'}, {"access-log", required_argument, nullptr, 'l'},
      {"log-level", required_argument, nullptr, 'L'},     {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},             {"max-upstream-connections", required_argument, nullptr, 'm'},
      {"io-uring", required_argument, nullptr, 'u'},
      {"aio", required_argument, nullptr, 'A'},
      {"max-connections", required_argument, nullptr, 'M'},
      {"request-header-timeout", required_argument, nullptr, 'H'},
      {"access-log-filter", required_argument, nullptr, 'F'},
      {"dns-server", required_argument, nullptr, 'D'},
      {"dns-ttl", required_argument, nullptr, 'T'},
      {nullptr, 0, nullptr, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "h", kLong, nullptr)) != -1) {
    switch (c) {
      case 's': f->shm = optarg; break;
      case 'o':
        if (!outbound_flag_seen) f->outbound.clear();
        outbound_flag_seen = true;
        f->outbound.push_back(optarg);
        break;
      case 'a': f->admin = optarg; break;
      case 'w': f->workers = std::atoi(optarg); break;
      case 'd': f->drain_timeout_s = std::atof(optarg); break;
      case 'l': f->access_log = optarg; break;
      case 'L': f->log_level = optarg; break;
      case 'm': f->max_upstream_connections = parseCount(optarg); break;
      case 'u': f->io_uring = optarg; break;
      case 'A': f->aio = optarg; break;
      case 'M': f->max_connections = parseCount(optarg); break;
      case 'H': f->request_header_timeout = optarg; break;
      case 'F': f->access_log_filter = optarg; break;
      case 'D': f->dns_server = optarg; break;
      case 'T': f->dns_ttl = optarg; break;
      case 'h': std::fputs(kUsage, stdout); return 0;
      case 'V': std::printf("mulligan-sidecar %s (%s)\n", MULLIGAN_VERSION, pfc::layoutVersion()); return 0;
      default: std::fputs(kUsage, stderr); return 2;
    }
  }
  if (optind < argc) {
    std::fprintf(stderr, "mulligan-sidecar: unexpected argument \"%s\"\n", argv[optind]);
    return 2;
  }
  if (f->workers < 1 || f->workers > 256) {
    std::fprintf(stderr, "mulligan-sidecar: --workers must be 1..256\n");
    return 2;
  }
  if (f->max_upstream_connections < 0 || f->max_upstream_connections > 1'000'000) {
    std::fprintf(stderr, "mulligan-sidecar: --max-upstream-connections must be 0..1000000\n");
    return 2;
  }
  if (f->max_connections == -1 || f->max_connections > 10'000'000) {
    std::fprintf(stderr, "mulligan-sidecar: --max-connections must be 0..10000000\n");
    return 2;
  }
  if (auto t = parseTimeout(f->request_header_timeout); !t || *t > 3'600'000'000) {
    std::fprintf(stderr,
                 "mulligan-sidecar: --request-header-timeout \"%s\" is not a duration up to 1h (e.g. 10s, 500ms; 0 = "
                 "none)\n",
                 f->request_header_timeout.c_str());
    return 2;
  }
  if (auto t = parseTimeout(f->dns_ttl); !t || *t <= 0 || *t > 3'600'000'000) {
    std::fprintf(stderr, "mulligan-sidecar: --dns-ttl \"%s\" is not a duration from 1ms to 1h (e.g. 5s, 500ms)\n",
                 f->dns_ttl.c_str());
    return 2;
  }
  if (!f->dns_server.empty() && !net::Address::parseNumeric(f->dns_server)) {
    std::fprintf(stderr, "mulligan-sidecar: --dns-server \"%s\" is not a numeric ADDR:PORT\n", f->dns_server.c_str());
    return 2;
  }
  if (f->outbound.empty()) {
    std::fprintf(stderr, "mulligan-sidecar: --outbound needs at least one ADDR:PORT\n");
    return 2;
  }
  if (f->io_uring != "on" && f->io_uring != "off") {
    std::fprintf(stderr, "mulligan-sidecar: --io-uring must be on or off, not \"%s\"\n", f->io_uring.c_str());
    return 2;
  }
  if (f->aio != "on" && f->aio != "off") {
    std::fprintf(stderr, "mulligan-sidecar: --aio must be on or off, not \"%s\"\n", f->aio.c_str());
    return 2;
  }
  if (proxy::AccessLogFilter filter; !proxy::parseAccessLogFilter(f->access_log_filter, &filter)) {
    std::fprintf(stderr, "mulligan-sidecar: --access-log-filter must be all or notable, not \"%s\"\n",
                 f->access_log_filter.c_str());
    return 2;
  }
  if (f->drain_timeout_s < 0 || f->drain_timeout_s > 3600) {
    std::fprintf(stderr, "mulligan-sidecar: --drain-timeout must be 0..3600 seconds\n");
    return 2;
  }
  return -1;
}

}  // namespace
}  // namespace mulligan

int main(int argc, char** argv) {
  using namespace mulligan;
  Flags flags;
  if (int rc = parseFlags(argc, argv, &flags); rc >= 0) return rc;
  LogLevel level;
  if (!parseLogLevel(flags.log_level.c_str(), &level)) {
    std::fprintf(stderr, "mulligan-sidecar: unknown --log-level \"%s\"\n", flags.log_level.c_str());
    return 2;
  }
  g_log_level.store(static_cast<int>(level));
  std::vector<net::Address> outbound;
  for (const std::string& text : flags.outbound) {
    auto addr = net::Address::parseNumeric(text, /*allow_port_zero=*/true);
    if (!addr) {
      std::fprintf(stderr, "mulligan-sidecar: --outbound \"%s\" is not a numeric ADDR:PORT (port 0 allowed)\n",
                   text.c_str());
      return 2;
    }
    for (const net::Address& earlier : outbound) {
      if (earlier == *addr && addr->port() != 0) {
        std::fprintf(stderr, "mulligan-sidecar: --outbound %s given twice\n", text.c_str());
        return 2;
      }
    }
    outbound.push_back(*addr);
  }
  // A node with IPv6 turned off cannot bind [::1]: with another address to
  // serve, say so and go on (the pod's IPv4 traffic must not lose its proxy
  // over it); alone, it is the startup error it would be anyway.
  if (outbound.size() > 1) {
    std::vector<net::Address> usable;
    for (const net::Address& a : outbound) {
      if (net::ipv6Unavailable(a)) {
        LOG_WARN("--outbound %s skipped: IPv6 is turned off on this host", a.toString().c_str());
      } else {
        usable.push_back(a);
      }
    }
    if (!usable.empty()) outbound = std::move(usable);
  }

  // SIGTERM/SIGINT are taken synchronously by the main thread (sigwait);
  // workers never see them. SIGPIPE: a peer that went away is an EOF, not death.
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGUSR1);  // used by the admin endpoint's POST /drain
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto shared = std::make_unique<proxy::SharedState>();
  shared->config.shm = flags.shm;
  shared->config.outbound = outbound;
  // Descriptors: the soft limit raised to the hard one, then the default
  // bound on connections derived from what that allows.
  shared->config.descriptor_limit = net::raiseDescriptorLimit();
  shared->config.max_connections =
      flags.max_connections >= 0 ? static_cast<size_t>(flags.max_connections)
                                 : net::defaultMaxConnectionsPerWorker(shared->config.descriptor_limit, flags.workers);
  shared->config.request_header_timeout_us = *parseTimeout(flags.request_header_timeout);
  shared->config.admin = flags.admin;
  shared->config.workers = flags.workers;
  shared->config.max_upstream_connections = static_cast<size_t>(flags.max_upstream_connections);
  shared->config.io_uring = flags.io_uring == "on";
  shared->config.aio = flags.aio == "on";
  shared->config.dns_server = flags.dns_server;
  shared->config.dns_ttl_us = *parseTimeout(flags.dns_ttl);
  shared->config.drain_timeout_us = static_cast<int64_t>(flags.drain_timeout_s * 1e6);
  // Declared before the workers: freed after them (stop() below writes
  // what is left once they have joined).
  std::unique_ptr<proxy::AccessLogWriter> access_log;
  if (flags.access_log != "off") {
    proxy::AccessLogWriter::Options options;
    proxy::parseAccessLogFilter(flags.access_log_filter, &options.filter);
    options.workers = flags.workers;
    std::string error;
    access_log = proxy::AccessLogWriter::open(flags.access_log, options, &error);
    if (!access_log) {
      std::fprintf(stderr, "mulligan-sidecar: --access-log %s: %s\n", flags.access_log.c_str(), error.c_str());
      return 1;
    }
    shared->config.access_log = access_log.get();
    access_log->start();
  }

  std::vector<std::unique_ptr<proxy::Worker>> workers;
  for (int i = 0; i < flags.workers; ++i) {
    auto w = std::make_unique<proxy::Worker>(i, shared.get());
    for (size_t a = 0; a < outbound.size(); ++a) {
      // Port 0: the other workers join the port the first one got.
      const net::Address& bind_addr = i == 0 ? outbound[a] : workers[0]->listenAddresses()[a];
      std::string error;
      if (!w->listen(bind_addr, &error)) {
        LOG_ERROR("%s", error.c_str());
        return 1;
      }
    }
    shared->worker_stats.push_back(&w->stats());
    workers.push_back(std::move(w));
  }

  admin::AdminServer admin_server(shared.get());
  std::string admin_error;
  if (!admin_server.start(flags.admin, &admin_error)) {
    LOG_ERROR("%s", admin_error.c_str());
    return 1;
  }

  for (auto& w : workers) w->start();
  for (const net::Address& a : workers[0]->listenAddresses()) {
    LOG_INFO("listening outbound %s (%d worker%s), policy from %s", a.toString().c_str(), flags.workers,
             flags.workers == 1 ? "" : "s", flags.shm.c_str());
  }
  if (shared->config.max_connections == 0) {
    LOG_INFO("no bound on connections per worker (--max-connections 0); descriptor limit %llu",
             static_cast<unsigned long long>(shared->config.descriptor_limit));
  } else {
    LOG_INFO("at most %zu connections per worker (%s; descriptor limit %llu)", shared->config.max_connections,
             flags.max_connections >= 0 ? "--max-connections" : "from RLIMIT_NOFILE",
             static_cast<unsigned long long>(shared->config.descriptor_limit));
  }
  LOG_INFO("listening admin %s", admin_server.address().c_str());

  int sig = 0;
  sigwait(&stop_signals, &sig);
  LOG_INFO("%s: draining (up to %.1fs)", sig == SIGUSR1 ? "POST /drain" : strsignal(sig), flags.drain_timeout_s);
  shared->draining.store(true);
  for (auto& w : workers) w->requestDrain();
  for (auto& w : workers) w->join();
  admin_server.stop();
  workers.clear();
  LOG_INFO("stopped");
  // Every worker has stopped appending: write what the access log holds.
  if (access_log) access_log->stop();
  return 0;
}
