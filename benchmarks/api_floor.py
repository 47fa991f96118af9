"""The floor of the HTTP benchmarks: a bare Starlette app that replays the very statements
our API sends (captured off the driver by ``benchmarks.api``) with the raw driver and
answers ``json.dumps`` of the rows as dicts. Plus SkillMeat's shape, for the record: every
project loaded with all its artifacts, then paginated in Python.

    python -m benchmarks.api_floor --db URL --statements FILE --port N
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_local = threading.local()


def _connect(url: str) -> Any:
    """One raw connection per server thread (sqlite3 or psycopg), as a pool would give."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        if url.startswith("sqlite:///"):
            conn = sqlite3.connect(url.removeprefix("sqlite:///"), check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
        else:
            import psycopg

            conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
            conn.execute("SET jit = off")  # as our engine sets it
        _local.conn = conn
    return conn


def _rows(url: str, statement: str, params: Any) -> list[dict[str, Any]]:
    conn = _connect(url)
    cur = conn.cursor()
    cur.execute(statement, params if isinstance(params, dict) else tuple(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _json(body: Any) -> Response:
    return Response(json.dumps(body, default=str), media_type="application/json")


def build_app(url: str, statements: dict[str, list[tuple[str, Any]]]) -> Starlette:
    """The floor's routes: ``/replay/{name}`` runs the captured statements of ``name``;
    ``/skillmeat/projects`` is SkillMeat's way of listing projects.
    """

    def replay(request: Request) -> Response:
        results = [_rows(url, sql, params) for sql, params in statements[request.path_params["name"]]]
        return _json(results[0] if len(results) == 1 else results)

    def skillmeat_projects(request: Request) -> Response:
        skip = int(request.query_params.get("skip", 0))
        limit = int(request.query_params.get("limit", 100))
        projects = _rows(url, "SELECT * FROM projects", ())
        mark = "?" if url.startswith("sqlite") else "%s"
        for project in projects:
            project["artifacts"] = _rows(url, f"SELECT * FROM artifacts WHERE project_id = {mark}", (project["id"],))
            project["artifact_count"] = len(project["artifacts"])
            project["outdated_count"] = sum(1 for a in project["artifacts"] if a["is_outdated"])
        projects.sort(key=lambda p: p["name"])
        page = projects[skip : skip + limit]
        for project in page:
            del project["artifacts"]  # its response lists counts only
        return _json({"items": page, "total": len(projects), "skip": skip, "limit": limit})

    routes = [Route("/replay/{name}", replay), Route("/skillmeat/projects", skillmeat_projects)]
    return Starlette(routes=routes)


def main(argv: list[str] | None = None) -> None:
    """Serve the floor with the same uvicorn settings as ``skillmeat-cache serve``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_floor")
    parser.add_argument("--db", required=True)
    parser.add_argument("--statements", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    statements = json.loads(args.statements.read_text())
    uvicorn.run(build_app(args.db, statements), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
