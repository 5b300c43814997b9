#!/usr/bin/env python3
"""Integration tests of examples/http-service (uvrt-http-service), reporting TAP.

Usage: test_http_service.py PATH_TO_uvrt-http-service

Each case starts its own server on --port 0 with a database in a temporary directory, reads the
port from its `listening on 127.0.0.1:PORT` line and drives it with real clients: the `curl`
executable for ordinary requests, raw sockets for keep-alive, pipelining, malformed input, slow
senders and disconnects. Waiting for a state is done by polling /stats (or reading a socket) with
a deadline, never by sleeping a fixed time. Python 3 standard library only (and curl).
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BIN = None
CURL = shutil.which('curl') or 'curl'

# Generous bounds: the suite also runs under ASan and TSan.
START_TIMEOUT = 90.0   # database creation included
IO_TIMEOUT = 20.0      # one request/response
EXIT_TIMEOUT = 30.0    # a server asked to stop

QUERY_SQL = ('select count(*), coalesce(sum(v), 0) from items '
             'where k between ?1 and ?1 + 200')

STATS_SHAPE = {
    'runtime': {
        'submitted': int, 'settled': int, 'cancelled': int, 'abandoned': int,
        'queued': int, 'running': int, 'waiting_for_limiter': int,
        'wait_us': {'count': int, 'p50': int, 'p90': int, 'p99': int, 'max': int},
        'run_us': {'count': int, 'p50': int, 'p90': int, 'p99': int, 'max': int},
    },
    'limiter': {'tokens': int, 'borrowed': int, 'waiting': int},
    'service': {'connections': int, 'requests': int, 'responses': int, 'timeouts': int,
                'dropped': int},
}


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def check_eq(got, expected, what):
    if got != expected:
        raise Failure('%s: expected %r, got %r' % (what, expected, got))


# --------------------------------------------------------------------------------------------
# The server under test.

class Server:
    def __init__(self, args=(), rows=20000, tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix='uvrt-http-test-')
        self.db = os.path.join(self.tmp, 'items.db')
        self.cmd = [BIN, '--port', '0', '--db', self.db]
        if rows is not None:
            self.cmd += ['--rows', str(rows)]
        self.cmd += list(args)
        self.err_path = os.path.join(self.tmp, 'stderr.txt')
        self.err = open(self.err_path, 'wb')
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err)
        self.port = None
        self.stdout = b''
        line = self._read_line(START_TIMEOUT)
        m = re.fullmatch(rb'listening on 127\.0\.0\.1:(\d+)\n', line)
        check(m is not None, 'first stdout line is %r, expected "listening on 127.0.0.1:PORT"' % line)
        self.port = int(m.group(1))
        check(0 < self.port < 65536, 'port %d out of range' % self.port)

    def _read_line(self, timeout):
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b''
        while b'\n' not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure('no "listening on" line within %.0f s (%s); stderr: %s'
                              % (timeout, ' '.join(self.cmd), self.stderr_tail()))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise Failure('server exited (status %s) before listening; stderr: %s'
                                  % (self.proc.returncode, self.stderr_tail()))
                buf += chunk
        return buf

    def stderr_text(self):
        try:
            with open(self.err_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def stderr_tail(self, n=1500):
        t = self.stderr_text()
        return repr(t[-n:])

    def url(self, path):
        return 'http://127.0.0.1:%d%s' % (self.port, path)

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        check(self.alive(), 'server died (status %s); stderr: %s'
              % (self.proc.returncode, self.stderr_tail()))

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop_and_check(self):
        """SIGTERM; the server must exit 0 with `stopped` as its last stderr line. Under the
        sanitizers this is also where leaks and errors at teardown show."""
        self.check_alive()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(EXIT_TIMEOUT)
        check(rc is not None, 'server did not exit within %.0f s of SIGTERM' % EXIT_TIMEOUT)
        check_eq(rc, 0, 'exit status after SIGTERM (stderr: %s)' % self.stderr_tail())
        check_stopped_last(self.stderr_text())

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.err.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # /stats through a raw socket (cheaper than a curl process when polling).
    def stats(self):
        status, headers, body = raw_get(self.port, '/stats')
        check_eq(status, 200, '/stats status')
        try:
            return json.loads(body)
        except ValueError:
            raise Failure('/stats body is not JSON: %r' % body)

    def wait_stats(self, pred, what, timeout=IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = self.stats()
            if pred(last):
                return last
            if time.monotonic() > deadline:
                raise Failure('waited %.0f s for %s; last /stats: %s'
                              % (timeout, what, json.dumps(last)))
            time.sleep(0.02)  # a poll interval, not a synchronisation


def check_stopped_last(err):
    lines = [l for l in err.splitlines() if l.strip()]
    check(lines and lines[-1].strip() == 'stopped',
          'last stderr line should be "stopped"; stderr ends with %r' % err[-800:])


def run_case(fn):
    """Calls fn(make_server) where make_server(...) starts a server that is killed afterwards."""
    servers = []

    def make(*a, **kw):
        s = Server(*a, **kw)
        servers.append(s)
        return s
    try:
        fn(make)
    finally:
        for s in servers:
            s.close()


# --------------------------------------------------------------------------------------------
# Clients.

def curl(url, *extra):
    """One or more transfers with the curl executable. Returns (status, headers, body) of the
    transfer (the last one if there are several)."""
    cmd = [CURL, '-sS', '-i', '--noproxy', '*', '--http1.1', '--max-time', str(int(IO_TIMEOUT))]
    cmd += list(extra) + [url]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=IO_TIMEOUT + 10)
    check(p.returncode == 0, 'curl %s failed (%d): %s' % (url, p.returncode, p.stderr.decode()))
    return parse_one(p.stdout, url)


def parse_head(head):
    lines = head.split(b'\r\n')
    m = re.fullmatch(rb'HTTP/1\.[01] (\d{3})( .*)?', lines[0])
    check(m is not None, 'bad status line %r' % lines[0])
    headers = {}
    for l in lines[1:]:
        check(b':' in l, 'bad header line %r' % l)
        k, v = l.split(b':', 1)
        headers.setdefault(k.strip().lower().decode(), []).append(v.strip().decode())
    return int(m.group(1)), {k: v[-1] if len(v) == 1 else v for k, v in headers.items()}


def parse_one(data, what):
    check(b'\r\n\r\n' in data, '%s: no complete response head in %r' % (what, data[:300]))
    head, body = data.split(b'\r\n\r\n', 1)
    status, headers = parse_head(head)
    check_framing(status, headers, body, what)
    return status, headers, body


def check_framing(status, headers, body, what):
    check('content-length' in headers, '%s: no Content-Length (status %d, headers %r)'
          % (what, status, headers))
    check('content-type' in headers, '%s: no Content-Type (status %d, headers %r)'
          % (what, status, headers))
    check_eq(headers['content-length'], str(len(body)), '%s: Content-Length vs body' % what)


def connect(port, timeout=IO_TIMEOUT):
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Reader:
    """Reads HTTP responses off a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b''
        self.eof = False

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
        self.buf += chunk
        return chunk

    def response(self, what='response'):
        while b'\r\n\r\n' not in self.buf:
            if not self._fill():
                raise Failure('%s: connection closed before a response head; got %r'
                              % (what, self.buf[:300]))
        head, rest = self.buf.split(b'\r\n\r\n', 1)
        status, headers = parse_head(head)
        check('content-length' in headers, '%s: no Content-Length in %r' % (what, head))
        n = int(headers['content-length'])
        self.buf = rest
        while len(self.buf) < n:
            if not self._fill():
                raise Failure('%s: closed after %d of %d body bytes'
                              % (what, len(self.buf), n))
        body, self.buf = self.buf[:n], self.buf[n:]
        check('content-type' in headers, '%s: no Content-Type in %r' % (what, head))
        return status, headers, body

    def closed(self, timeout=IO_TIMEOUT):
        """True when the peer closes (EOF or reset) within timeout with nothing more sent."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
                raise Failure('expected the connection to close; got more bytes %r'
                              % self.buf[:300])
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def request(path, method='GET', extra=''):
    return ('%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n' % (method, path, extra)).encode()


def raw_get(port, path, extra=''):
    s = connect(port)
    try:
        s.sendall(request(path, extra=extra + 'Connection: close\r\n'))
        return Reader(s).response('GET ' + path)
    finally:
        s.close()


def check_refused(port, payload, want, what):
    """Sends payload on a new connection: the answer must be `want`, then the server closes."""
    s = connect(port)
    try:
        s.sendall(payload)
        r = Reader(s)
        status, headers, body = r.response(what)
        check_eq(status, want, what + ': status')
        check_eq(headers['content-length'], str(len(body)), what + ': Content-Length')
        check(r.closed(), '%s: connection not closed after the %d' % (what, want))
    finally:
        s.close()


# --------------------------------------------------------------------------------------------
# Expected answers.

def sqlite_answer(db, i):
    con = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
    try:
        n, s = con.execute(QUERY_SQL, (i % 9000,)).fetchone()
    finally:
        con.close()
    return n, s


def expected_query_body(db, i):
    n, s = sqlite_answer(db, i)
    return ('{"id":%d,"n":%d,"sum":%d}' % (i, n, s)).encode(), n


def check_json_error(status, headers, body, want_status, what):
    check_eq(status, want_status, '%s: status (body %r)' % (what, body))
    check(headers.get('content-type', '').startswith('application/json'),
          '%s: Content-Type %r' % (what, headers.get('content-type')))
    try:
        obj = json.loads(body)
    except ValueError:
        raise Failure('%s: body is not JSON: %r' % (what, body))
    check(isinstance(obj, dict) and isinstance(obj.get('error'), str) and obj['error'],
          '%s: body should be {"error":"..."}, got %r' % (what, body))


def check_query_answer(srv, i, status, headers, body, what):
    want, _ = expected_query_body(srv.db, i)
    check_eq(status, 200, '%s: status (body %r)' % (what, body))
    check(headers.get('content-type', '').startswith('application/json'),
          '%s: Content-Type %r' % (what, headers.get('content-type')))
    check_eq(body, want, '%s: body' % what)


# --------------------------------------------------------------------------------------------
# Cases.

def case_health(make):
    srv = make()
    status, headers, body = curl(srv.url('/health'))
    check_eq(status, 200, '/health status')
    check_eq(body, b'{"status":"ok"}', '/health body')
    check(headers['content-type'].startswith('application/json'),
          '/health Content-Type %r' % headers['content-type'])
    srv.stop_and_check()


def case_query_matches_sqlite(make):
    # The full default table (200 000 rows): n is about 4000 for small ids.
    srv = make(rows=None)
    con = sqlite3.connect('file:%s?mode=ro' % srv.db, uri=True)
    try:
        count, sk, sv = con.execute('select count(*), sum(k), sum(v) from items').fetchone()
        nidx = con.execute("select count(*) from sqlite_master where type = 'index' "
                           "and tbl_name = 'items'").fetchone()[0]
    finally:
        con.close()
    rows = 200000
    check_eq(count, rows, 'rows in the default table')
    check_eq(sk, sum(i % 10000 for i in range(rows)), 'sum(k) of the table')
    check_eq(sv, sum((i * 7919) % 1000 for i in range(rows)), 'sum(v) of the table')
    check(nidx >= 1, 'no index on items')
    for i in [0, 7, 8999, 9000, 123456789, 9223372036854775807]:
        status, headers, body = curl(srv.url('/query?id=%d' % i))
        check_query_answer(srv, i, status, headers, body, '/query?id=%d' % i)
        n = json.loads(body)['n']
        if i % 9000 <= 9799:  # k between x and x+200 fully inside 0..9999
            check(3900 <= n <= 4100, '/query?id=%d: n=%d, expected about 4000' % (i, n))
    # Other parameters are ignored.
    status, headers, body = curl(srv.url('/query?x=1&id=5&y='))
    check_query_answer(srv, 5, status, headers, body, '/query?x=1&id=5&y=')
    srv.stop_and_check()

    # Zero matching rows: sum is 0, not null.
    srv = make(rows=5)
    status, headers, body = curl(srv.url('/query?id=1000'))
    check_eq(status, 200, '/query?id=1000 on a 5-row table: status')
    check_eq(body, b'{"id":1000,"n":0,"sum":0}', '/query?id=1000 on a 5-row table: body')
    srv.stop_and_check()


def case_keep_alive(make):
    srv = make(['--query-delay-ms', '200', '--query-timeout-ms', '30000'])
    # Sequential requests on one connection.
    s = connect(srv.port)
    try:
        r = Reader(s)
        for k, path in enumerate(['/health', '/query?id=7', '/health', '/stats', '/query?id=9001']):
            s.sendall(request(path))
            status, headers, body = r.response('request %d (%s) on one connection' % (k + 1, path))
            check_eq(status, 200, 'keep-alive request %d (%s) status' % (k + 1, path))
            if path.startswith('/query'):
                check_query_answer(srv, int(path.split('=')[1]), status, headers, body, path)
            check(headers.get('connection', '').lower() != 'close',
                  'keep-alive request %d answered with Connection: close' % (k + 1))
        # Pipelined: one send, answered in order (the slow query before the fast /health must
        # not be overtaken).
        paths = ['/query?id=11', '/health', '/query?id=12', '/nope', '/health']
        s.sendall(b''.join(request(p) for p in paths))
        for k, path in enumerate(paths):
            status, headers, body = r.response('pipelined request %d (%s)' % (k + 1, path))
            if path.startswith('/query'):
                check_query_answer(srv, int(path.split('=')[1]), status, headers, body,
                                   'pipelined %d (%s)' % (k + 1, path))
            elif path == '/health':
                check_eq((status, body), (200, b'{"status":"ok"}'),
                         'pipelined %d (%s): status and body' % (k + 1, path))
            else:
                check_eq(status, 404, 'pipelined %d (%s): status' % (k + 1, path))
        # Connection: close is honoured: the answer, then the close.
        s.sendall(request('/health', extra='Connection: close\r\n'))
        status, headers, body = r.response('request with Connection: close')
        check_eq(status, 200, 'Connection: close request status')
        check(r.closed(), 'server did not close after a Connection: close request')
    finally:
        s.close()
    # HTTP/1.0 closes after the response.
    s = connect(srv.port)
    try:
        s.sendall(b'GET /health HTTP/1.0\r\n\r\n')
        r = Reader(s)
        status, headers, body = r.response('HTTP/1.0 request')
        check_eq(status, 200, 'HTTP/1.0 status')
        check(r.closed(), 'server did not close after an HTTP/1.0 request')
    finally:
        s.close()
    # curl with several URLs reuses one connection.
    urls = [srv.url('/health'), srv.url('/query?id=3'), srv.url('/health')]
    p = subprocess.run([CURL, '-sS', '--noproxy', '*', '--http1.1', '--max-time', str(int(IO_TIMEOUT)),
                        '-w', '%{http_code} %{num_connects}\\n']
                       + [a for u in urls for a in ('-o', '/dev/null', u)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=IO_TIMEOUT + 10)
    check_eq(p.returncode, 0, 'curl with 3 URLs exit status (%s)' % p.stderr.decode())
    got = p.stdout.decode().split()
    check_eq(got, ['200', '1', '200', '0', '200', '0'],
             'curl with 3 URLs: (status, new connections) per transfer')
    srv.stop_and_check()


def check_stats_shape(obj, shape, where='stats'):
    check(isinstance(obj, dict), '%s is not an object: %r' % (where, obj))
    for k, t in shape.items():
        check(k in obj, '%s has no field %r: %r' % (where, k, obj))
        if isinstance(t, dict):
            check_stats_shape(obj[k], t, where + '.' + k)
        else:
            v = obj[k]
            check(isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                  '%s.%s should be a non-negative integer, got %r' % (where, k, v))


def case_stats(make):
    srv = make(['--threads', '3'])
    for _ in range(3):
        check_eq(curl(srv.url('/health'))[0], 200, '/health status')
    for i in (1, 2):
        check_eq(curl(srv.url('/query?id=%d' % i))[0], 200, '/query status')
    status, headers, body = curl(srv.url('/stats'))
    check_eq(status, 200, '/stats status')
    check(headers['content-type'].startswith('application/json'),
          '/stats Content-Type %r' % headers['content-type'])
    try:
        st = json.loads(body)
    except ValueError:
        raise Failure('/stats body is not JSON: %r' % body)
    check_stats_shape(st, STATS_SHAPE)
    rt, lim, svc = st['runtime'], st['limiter'], st['service']
    diag = ' (/stats %s)' % body.decode()
    check_eq(svc['requests'], 6, 'service.requests after 3 /health, 2 /query and this /stats' + diag)
    check(5 <= svc['responses'] <= 6, 'service.responses should be 5 (or 6)' + diag)
    check(svc['connections'] >= 1, 'service.connections should count this one' + diag)
    check_eq((svc['timeouts'], svc['dropped']), (0, 0), 'service.timeouts, dropped' + diag)
    check_eq(rt['submitted'], 2, 'runtime.submitted after 2 queries' + diag)
    check_eq(rt['settled'], 2, 'runtime.settled after 2 queries' + diag)
    check_eq((rt['cancelled'], rt['abandoned'], rt['queued'], rt['running'],
              rt['waiting_for_limiter']), (0, 0, 0, 0, 0),
             'runtime cancelled/abandoned/queued/running/waiting_for_limiter' + diag)
    for name in ('wait_us', 'run_us'):
        lat = rt[name]
        check_eq(lat['count'], 2, 'runtime.%s.count' % name + diag)
        check(lat['p50'] <= lat['p90'] <= lat['p99'], 'runtime.%s percentiles not ordered' % name + diag)
    check(rt['run_us']['max'] > 0, 'runtime.run_us.max is 0 after 2 queries' + diag)
    check_eq(lim['tokens'], 3, 'limiter.tokens (--connections defaults to --threads 3)' + diag)
    check_eq((lim['borrowed'], lim['waiting']), (0, 0), 'limiter borrowed, waiting' + diag)
    # The next /stats counts the previous one.
    st2 = srv.stats()
    check_eq(st2['service']['requests'], 7, 'service.requests on the next /stats')
    srv.stop_and_check()


def check_allow(headers, what):
    allow = headers.get('allow')
    check(isinstance(allow, str) and 'GET' in [m.strip() for m in allow.split(',')],
          '%s: Allow header should be "GET" (HEAD may be listed too), got %r' % (what, allow))


def case_errors(make):
    srv = make()
    status, headers, body = curl(srv.url('/nope'))
    check_eq(status, 404, 'GET /nope status')
    status, headers, body = curl(srv.url('/healthz'))
    check_eq(status, 404, 'GET /healthz status')
    status, headers, body = curl(srv.url('/query?id=1'), '-X', 'POST', '--data', 'x=1')
    check_eq(status, 405, 'POST /query status')
    check_allow(headers, 'POST /query')
    status, headers, body = curl(srv.url('/health'), '-X', 'DELETE')
    check_eq(status, 405, 'DELETE /health status')
    check_allow(headers, 'DELETE /health')
    bad = ['/query', '/query?', '/query?id=', '/query?id=-1', '/query?id=%2B1', '/query?id=+1',
           '/query?id=abc', '/query?id=1x', '/query?id=%201', '/query?id=99999999999999999999',
           '/query?id=9223372036854775808', '/query?id=1&id=2', '/query?foo=1']
    for path in bad:
        status, headers, body = curl(srv.url(path))
        check_json_error(status, headers, body, 400, 'GET ' + path)
    # A request target in absolute form routes like its path (RFC 9112, 3.2.2).
    for target, want in (('http://127.0.0.1/health', 200), ('HTTP://example.com:80/query?id=7', 200),
                         ('http://127.0.0.1', 404), ('http://127.0.0.1/nope', 404)):
        check_eq(raw_get(srv.port, target)[0], want, 'GET ' + target + ': status')
    # The server is still fine.
    status, headers, body = curl(srv.url('/query?id=9223372036854775807'))
    check_query_answer(srv, 9223372036854775807, status, headers, body, 'max id after the errors')
    srv.stop_and_check()


def case_malformed(make):
    srv = make()
    bad = [
        b'GARBAGE\r\n\r\n',
        # Bad request lines that http_parser refuses even when built without HTTP_PARSER_STRICT
        # (Debian's is: it takes `HTXP/1.1` for `HTTP/1.1`).
        b'GET /health HTTP/x.1\r\nHost: x\r\n\r\n',
        b'GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n',
        b'GET /health HTTP/1.1\r\nHost: x\r\nThisHeaderHasNoColon\r\n\r\n',
        b'\x00\x01\x02\x03\r\n\r\n',
    ]
    for req in bad:
        check_refused(srv.port, req, 400, 'malformed %r' % req)
    # A valid request followed by garbage on the same connection: the first is answered.
    s = connect(srv.port)
    try:
        s.sendall(request('/health') + b'GARBAGE\r\n\r\n')
        r = Reader(s)
        status, headers, body = r.response('valid request before garbage')
        check_eq((status, body), (200, b'{"status":"ok"}'), 'valid request before garbage')
        status, headers, body = r.response('garbage after a valid request')
        check_eq(status, 400, 'garbage after a valid request: status')
        check(r.closed(), 'garbage after a valid request: connection not closed')
    finally:
        s.close()
    status, headers, body = curl(srv.url('/health'))
    check_eq((status, body), (200, b'{"status":"ok"}'), '/health after the malformed requests')
    srv.stop_and_check()


def case_limits(make):
    srv = make()
    # 20 KB header, over the default --max-header-bytes 8192.
    check_refused(srv.port, b'GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ' + b'a' * 20000 + b'\r\n\r\n',
                  431, '20 KB header')
    # Content-Length over --max-body-bytes (default 1 MiB): 413 without waiting for the body.
    check_refused(srv.port, request('/health', extra='Content-Length: 2000000\r\n'), 413,
                  'Content-Length 2000000')
    # Under the limits, a GET with a small body is served and the connection kept.
    s = connect(srv.port)
    try:
        s.sendall(request('/health', extra='Content-Length: 5\r\nX-Pad: ' + 'b' * 4000 + '\r\n')
                  + b'hello' + request('/health'))
        r = Reader(s)
        for k in (1, 2):
            status, headers, body = r.response('request %d under the limits' % k)
            check_eq((status, body), (200, b'{"status":"ok"}'), 'request %d under the limits' % k)
    finally:
        s.close()
    # With smaller limits from the flags.
    srv2 = make(['--max-header-bytes', '1024', '--max-body-bytes', '100'])
    check_refused(srv2.port, request('/health', extra='X-Pad: ' + 'c' * 1200 + '\r\n'), 431,
                  '1.2 KB header, limit 1024')
    check_refused(srv2.port, request('/health', extra='Content-Length: 101\r\n'), 413,
                  'Content-Length 101, limit 100')
    # Chunked body over the limit.
    check_refused(srv2.port, request('/health', extra='Transfer-Encoding: chunked\r\n')
                  + b'c8\r\n' + b'd' * 200 + b'\r\n0\r\n\r\n', 413, 'chunked body of 200, limit 100')
    for sv in (srv, srv2):
        status, headers, body = curl(sv.url('/health'))
        check_eq(status, 200, '/health after the limits')
        sv.stop_and_check()


def case_header_timeout(make):
    srv = make(['--header-timeout-ms', '300'])
    bound = 5.0

    # A client sending one header byte every 100 ms for ever.
    s = connect(srv.port)
    try:
        t0 = time.monotonic()
        s.sendall(b'GET /health HTTP/1.1\r\n')
        closed_after = None
        got = b''
        while time.monotonic() - t0 < bound:
            try:
                s.sendall(b'X')
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - t0
                break
            r, _, _ = select.select([s], [], [], 0.1)
            if r:
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:
                    chunk = b''
                if not chunk:
                    closed_after = time.monotonic() - t0
                    break
                got += chunk  # a 408 before the close is fine
        check(closed_after is not None,
              'byte-by-byte sender not closed within %.0f s (header timeout 300 ms)' % bound)
        check(closed_after >= 0.25, 'byte-by-byte sender closed after %.3f s, before the 300 ms '
              'header timeout' % closed_after)
    finally:
        s.close()

    # An idle keep-alive connection after one request.
    s = connect(srv.port)
    try:
        s.sendall(request('/health'))
        r = Reader(s)
        check_eq(r.response('first request')[0], 200, 'request before idling')
        t0 = time.monotonic()
        check(r.closed(timeout=bound), 'idle keep-alive connection not closed within %.0f s' % bound)
        el = time.monotonic() - t0
        check(el >= 0.25, 'idle keep-alive connection closed after %.3f s, before 300 ms' % el)
    finally:
        s.close()

    # A connection that never sends anything.
    s = connect(srv.port)
    try:
        t0 = time.monotonic()
        check(Reader(s).closed(timeout=bound), 'silent connection not closed within %.0f s' % bound)
    finally:
        s.close()

    # The server still serves, and counts no connection left open by those.
    status, headers, body = curl(srv.url('/health'))
    check_eq(status, 200, '/health after the timeouts')
    st = srv.wait_stats(lambda st: st['service']['connections'] == 1,
                        'service.connections == 1 (only the /stats one)')
    srv.stop_and_check()


def case_disconnect_mid_query(make):
    srv = make(['--query-delay-ms', '1500', '--connections', '1', '--query-timeout-ms', '30000'])
    a = connect(srv.port)
    b = None
    try:
        a.sendall(request('/query?id=21'))
        srv.wait_stats(lambda st: st['runtime']['submitted'] >= 1 and st['runtime']['running'] >= 1,
                       'the first query running')
        b = connect(srv.port)
        b.sendall(request('/query?id=22'))
        srv.wait_stats(lambda st: st['runtime']['submitted'] >= 2
                       and st['runtime']['waiting_for_limiter'] >= 1,
                       'the second query waiting for the limiter')
        # Close both before any answer: a with a FIN, b with a reset.
        a.close()
        a = None
        b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
        b.close()
        b = None
    finally:
        if a:
            a.close()
        if b:
            b.close()
    st = srv.wait_stats(lambda st: st['service']['dropped'] >= 2,
                        'service.dropped reaching 2', timeout=30)
    diag = ' (/stats %s)' % json.dumps(st)
    check_eq(st['service']['dropped'], 2, 'service.dropped' + diag)
    check(st['runtime']['cancelled'] >= 1,
          'runtime.cancelled should be >= 1: the query waiting for the token never ran' + diag)
    check(st['runtime']['run_us']['count'] <= 1, 'the waiting query ran' + diag)
    status, headers, body = curl(srv.url('/health'))
    check_eq((status, body), (200, b'{"status":"ok"}'), '/health after the disconnects')
    status, headers, body = curl(srv.url('/query?id=23'))
    check_query_answer(srv, 23, status, headers, body, '/query?id=23 after the disconnects')
    st = srv.stats()
    check_eq(st['service']['dropped'], 2, 'service.dropped after a served query')
    check_eq(st['limiter']['borrowed'], 0, 'limiter.borrowed at rest')
    srv.stop_and_check()


def case_query_timeout(make):
    srv = make(['--query-delay-ms', '1000', '--query-timeout-ms', '100'])
    # Timed over a raw socket (a curl process's start-up would count otherwise).
    s = connect(srv.port)
    try:
        t0 = time.monotonic()
        s.sendall(request('/query?id=5'))
        status, headers, body = Reader(s).response('/query?id=5 timing out')
        el = time.monotonic() - t0
    finally:
        s.close()
    check_eq(status, 504, '/query with delay 1000 ms, timeout 100 ms: status')
    check_eq(body, b'{"error":"query timed out"}', '504 body')
    check(headers['content-type'].startswith('application/json'), '504 Content-Type')
    check(el < 0.9, 'the 504 came after %.3f s, not at the 100 ms timeout' % el)
    # And through curl, a second time.
    status, headers, body = curl(srv.url('/query?id=6'))
    check_eq((status, body), (504, b'{"error":"query timed out"}'), 'second timed-out query (curl)')
    st = srv.stats()
    check_eq(st['service']['timeouts'], 2, 'service.timeouts after two (/stats %s)' % json.dumps(st))
    status, headers, body = curl(srv.url('/health'))
    check_eq(status, 200, '/health after the timeout')
    srv.stop_and_check()


def case_sigterm_under_load(make):
    nclients = 16
    srv = make(['--query-delay-ms', '300', '--connections', '2', '--query-timeout-ms', '60000',
                '--drain-timeout-ms', '60000'])
    results = [None] * nclients
    arrivals = [None] * nclients
    first_close = threading.Event()
    first_close_at = [None]
    lock = threading.Lock()

    def client(k):
        try:
            s = connect(srv.port, timeout=60)
            try:
                s.sendall(request('/query?id=%d' % (100 + k)))
                r = Reader(s)
                resp = r.response('client %d' % k)
                arrivals[k] = time.monotonic()
                if resp[1].get('connection', '').lower() == 'close':
                    with lock:
                        if first_close_at[0] is None:
                            first_close_at[0] = arrivals[k]
                    first_close.set()
                closed = r.closed(timeout=60)
                results[k] = (resp, closed, None)
            finally:
                s.close()
        except Exception as e:  # reported below
            results[k] = (None, None, '%s: %s' % (type(e).__name__, e))
            first_close.set()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(nclients)]
    for t in threads:
        t.start()
    srv.wait_stats(lambda st: st['runtime']['submitted'] >= nclients,
                   'runtime.submitted >= %d' % nclients)
    t_sig = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)

    # Once a response written in the drain has arrived (Connection: close), the listener is
    # closed: a new connection is refused, or closed without an answer.
    check(first_close.wait(timeout=60), 'no response with Connection: close after SIGTERM')
    late = None
    try:
        c = socket.create_connection(('127.0.0.1', srv.port), timeout=10)
    except ConnectionRefusedError:
        late = 'refused'
    else:
        try:
            c.sendall(request('/health'))
            c.settimeout(10)
            data = c.recv(4096)
            late = 'closed' if not data else data
        except (ConnectionResetError, BrokenPipeError):
            late = 'closed'
        except socket.timeout:
            late = 'no answer, not closed within 10 s'
        finally:
            c.close()
    still_draining = srv.alive()

    for t in threads:
        t.join(timeout=90)
    rc = srv.wait_exit(EXIT_TIMEOUT)
    t_exit = time.monotonic() - t_sig

    problems = []
    for k in range(nclients):
        res = results[k]
        if res is None:
            problems.append('client %d: no result' % k)
            continue
        resp, closed, err = res
        if err:
            problems.append('client %d: %s' % (k, err))
            continue
        status, headers, body = resp
        want, _ = expected_query_body(srv.db, 100 + k)
        if status != 200 or body != want:
            problems.append('client %d: got %d %r, expected 200 %r' % (k, status, body, want))
        # A response that arrives well after the first one written in the drain was written in
        # the drain too, and must say Connection: close.
        if (first_close_at[0] is not None and arrivals[k] > first_close_at[0] + 0.1
                and headers.get('connection', '').lower() != 'close'):
            problems.append('client %d: response written in the drain without Connection: close'
                            % k)
        if not closed:
            problems.append('client %d: connection not closed after its response' % k)
    check(not problems, '; '.join(problems))
    check(rc is not None, 'server still running %.0f s after SIGTERM' % EXIT_TIMEOUT)
    check_eq(rc, 0, 'exit status after SIGTERM under load (stderr %s)' % srv.stderr_tail())
    check_stopped_last(srv.stderr_text())
    check(still_draining, 'the server had exited before the connection made after SIGTERM: '
          'that check proved nothing (16 queries of 300 ms on 2 connections should drain for '
          'about 2 s)')
    check(late in ('refused', 'closed'),
          'a connection made after SIGTERM (server still draining: %s) got %r'
          % (still_draining, late))
    check(t_exit < EXIT_TIMEOUT, 'exit took %.1f s' % t_exit)


def case_sigint_idle_keepalive(make):
    srv = make(['--header-timeout-ms', '60000', '--drain-timeout-ms', '60000'])
    s = connect(srv.port)
    try:
        s.sendall(request('/health'))
        r = Reader(s)
        check_eq(r.response('request before SIGINT')[0], 200, 'request before SIGINT')
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGINT)
        rc = srv.wait_exit(10)
        el = time.monotonic() - t0
        check(rc is not None, 'server with an idle keep-alive connection did not exit within 10 s '
              'of SIGINT (header and drain timeouts 60 s)')
        check_eq(rc, 0, 'exit status after SIGINT (stderr %s)' % srv.stderr_tail())
        check_stopped_last(srv.stderr_text())
        check(r.closed(timeout=5), 'the idle connection was not closed')
    finally:
        s.close()


def case_direct(make):
    srv = make(['--direct'])
    for i in [0, 7, 8999, 9000, 123456789]:
        status, headers, body = curl(srv.url('/query?id=%d' % i))
        check_query_answer(srv, i, status, headers, body, '--direct /query?id=%d' % i)
    check_eq(curl(srv.url('/health'))[0], 200, '--direct /health')
    srv.stop_and_check()


def case_bad_flags(make):
    tmp = tempfile.mkdtemp(prefix='uvrt-http-test-')
    try:
        db = os.path.join(tmp, 'items.db')
        cases = [['--port', 'abc'], ['--threads', '0'], ['--nope'], ['--port', '70000'],
                 ['--rows', '-1'], ['--port']]
        for extra in cases:
            cmd = [BIN, '--db', db, '--rows', '100'] + extra
            if '--port' not in extra:
                cmd += ['--port', '0']
            try:
                p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=30)
            except subprocess.TimeoutExpired:
                raise Failure('%s: still running after 30 s' % ' '.join(extra))
            check_eq(p.returncode, 2, '%s: exit status (stderr %r)'
                     % (' '.join(extra), p.stderr.decode()[-300:]))
            check(p.stderr.strip(), '%s: no message on stderr' % ' '.join(extra))
            check(b'listening' not in p.stdout, '%s: it listened' % ' '.join(extra))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def head_of(total, path='/health'):
    """A complete request head of exactly `total` bytes (request line, headers, blank line)."""
    base = request(path, extra='X-Pad: \r\n')
    head = request(path, extra='X-Pad: ' + 'p' * (total - len(base)) + '\r\n')
    check_eq(len(head), total, 'head_of(%d) length' % total)
    return head


def case_header_limit_exact(make):
    # --max-header-bytes counts the whole head, its final CRLF included: a head of exactly the
    # limit is served, one byte more is 431, however the head is split across reads (a server
    # once let limit + 1 through: http_parser pauses before the head's last byte).
    srv = make(['--max-header-bytes', '1024'])
    for total, want in ((1023, 200), (1024, 200), (1025, 431), (1026, 431)):
        head = head_of(total)
        for how, parts in (('in one write', [head]), ('last byte apart', [head[:-1], head[-1:]])):
            what = '%d-byte head %s, limit 1024' % (total, how)
            s = connect(srv.port)
            try:
                for part in parts:
                    s.sendall(part)
                r = Reader(s)
                status, headers, body = r.response(what)
                check_eq(status, want, what + ': status')
                if want == 431:
                    check(r.closed(), what + ': not closed after the 431')
            finally:
                s.close()
    srv.stop_and_check()
    # A limit above http_parser's own default bound (80 KiB) is the limit too: a 200 KB head
    # with --max-header-bytes 1048576 used to get 431 from http_parser's bound.
    srv = make(['--max-header-bytes', '1048576'])
    for total, want in ((200000, 200), (1048576, 200), (1048577, 431)):
        what = '%d-byte head, limit 1048576' % total
        s = connect(srv.port)
        try:
            s.sendall(head_of(total))
            check_eq(Reader(s).response(what)[0], want, what + ': status')
        finally:
            s.close()
    srv.stop_and_check()


CASES = [
    ('GET /health: 200 {"status":"ok"}, JSON, Content-Length', case_health),
    ('GET /query?id=N matches sqlite3 on the same file (full table; zero rows sum 0)',
     case_query_matches_sqlite),
    ('keep-alive, pipelining in order, Connection: close, HTTP/1.0, curl reuse', case_keep_alive),
    ('GET /stats has every field and counts the requests', case_stats),
    ('404 unknown path, 405 with Allow: GET, 400 for bad ids', case_errors),
    ('malformed requests: 400 then close, server keeps serving', case_malformed),
    ('431 for a large header, 413 for a large body, then close', case_limits),
    ('header timeout closes byte-by-byte senders and idle connections', case_header_timeout),
    ('client disconnect mid-query: dropped, cancelled, still serving', case_disconnect_mid_query),
    ('query timeout: 504 {"error":"query timed out"}, stats timeouts', case_query_timeout),
    ('SIGTERM under load: every started response complete, exit 0, no new connections',
     case_sigterm_under_load),
    ('SIGINT with an idle keep-alive connection: prompt exit 0', case_sigint_idle_keepalive),
    ('--direct answers /query correctly', case_direct),
    ('bad flags: exit 2 with a message', case_bad_flags),
    ('--max-header-bytes is exact: limit bytes served, limit + 1 is 431, above 80 KiB too',
     case_header_limit_exact),
]


def main():
    global BIN
    if len(sys.argv) < 2:
        print('usage: %s PATH_TO_uvrt-http-service [CASE_NUMBER...]' % sys.argv[0], file=sys.stderr)
        return 2
    BIN = os.path.abspath(sys.argv[1])
    only = {int(a) for a in sys.argv[2:]}
    # Proxies must not get in the way of curl or of anything else here.
    for v in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'):
        os.environ.pop(v, None)
    print('1..%d' % len(CASES), flush=True)
    failed = 0
    for k, (name, fn) in enumerate(CASES, 1):
        if only and k not in only:
            print('ok %d - %s # SKIP not selected' % (k, name), flush=True)
            continue
        t0 = time.monotonic()
        try:
            run_case(fn)
        except Exception as e:
            failed += 1
            print('not ok %d - %s' % (k, name))
            if isinstance(e, Failure):
                msg = str(e)
            else:
                msg = traceback.format_exc()
            for line in msg.splitlines():
                print('# ' + line)
            sys.stdout.flush()
        else:
            print('ok %d - %s' % (k, name))
            print('# %.1f s' % (time.monotonic() - t0), flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
