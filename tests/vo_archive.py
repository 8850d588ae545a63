"""One live archive for the Virtual Observatory tests: the small imaging program run through
every service into a PostgreSQL catalog of its own (the ``ivoa.obscore`` view needs
PostgreSQL), served by uvicorn on a loopback port with no configured base URL, so every URL
in an answer comes from the address the request reached. The program is under exclusive
access (its PI may read its data; a stranger may not); one archive operator
(``DMS_OPERATORS``) may read everything. Session-scoped: made once for every
``tests/test_vo_*.py`` module (the fixture ``vo_archive`` of tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import requests

from services.archive.app import create_app
from services.simulator import SimulationResult
from shared.config import Settings
from shared.tokens import create_token
from tests.conftest import scratch_database
from tests.faults.harness import small_program
from tests.imaging_chain import ChainRun, run_chain
from tests.system import Server, free_port

PI = "ada@example.org"
STRANGER = "eve@example.org"
OPERATOR = "otto@example.org"  # an archive operator (settings.operators)


@dataclass
class VOArchive:
    run: ChainRun
    server: Server
    tokens: dict[str, str]  # user -> API token
    settings: Settings  # the served application's: another one made from them shares its catalog

    @property
    def url(self) -> str:
        return self.server.url

    def session(self, user: str | None = None) -> requests.Session:
        """A requests session (what pyvo takes as ``session=``), with ``user``'s token."""
        s = requests.Session()
        if user is not None:
            s.headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return s


def serve_vo_archive(tmp_path_factory, prepare: Callable[[ChainRun], None] | None = None, *,
                     sim: SimulationResult | None = None) -> Iterator[VOArchive]:
    """Run the program (its simulation ``sim`` when made already), then ``prepare(run)``
    (more work on the archive before it is served)."""
    with scratch_database() as url:
        run = run_chain(small_program(), tmp_path_factory.mktemp("vo"), catalog_url=url, sim=sim)
        if prepare is not None:
            prepare(run)
        operators = ",".join(sorted(run.ctx.settings.operator_users | {OPERATOR}))
        settings = run.ctx.settings.model_copy(update={"archive_base_url": None, "operators": operators})
        with run.ctx.catalog.session() as s:
            tokens = {user: create_token(s, user, 30, "tests") for user in (PI, STRANGER, OPERATOR)}
        try:
            with Server(create_app(settings), free_port()) as server:
                yield VOArchive(run, server, tokens, settings)
        finally:
            run.ctx.catalog.dispose()
