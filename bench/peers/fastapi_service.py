"""The FastAPI + uvicorn peer of examples/http-service (issue 14): the same two endpoints written
the way a FastAPI user would, for bench/run's service workload.

GET /query?id=N runs the same SQLite query as uvrt-http-service in a sync `def` endpoint, which
Starlette hands to anyio's thread pool (run_in_threadpool: 40 threads by default), the setting
a FastAPI user gets without asking. Each pool thread opens its own read-only connection to the
database named by UVRT_SERVICE_DB the first time it runs a query (sqlite3 connections may not be
shared between threads by default). GET /health is an `async def`, answered on the event loop
like uvrt's.

Run from bench/peers, with Debian's packages (python3-fastapi, python3-uvicorn):

    UVRT_SERVICE_DB=/path/to/uvrt-service.db /usr/bin/python3 -m uvicorn fastapi_service:app \
        --host 127.0.0.1 --port 8000 --log-level warning --no-access-log

The database is the one uvrt-http-service creates (`uvrt-http-service --db PATH --create-only`):
this peer never writes it.
"""

import os
import sqlite3
import threading
from pathlib import Path

from fastapi import FastAPI

DB = Path(os.environ.get("UVRT_SERVICE_DB", "uvrt-service.db")).resolve()
QUERY = "select count(*), sum(v) from items where k between ?1 and ?1 + 200"

app = FastAPI()
_local = threading.local()


def connection():
    """This thread's connection, opened read-only on first use."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
    return conn


@app.get("/query")
def query(id: int):
    n, total = connection().execute(QUERY, (id % 9000,)).fetchone()
    return {"id": id, "n": n, "sum": total or 0}


@app.get("/health")
async def health():
    return {"status": "ok"}
