"""Query parameters shared by the search routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response
from pydantic import Field

from services.archive.mast import MAX_INT, MAX_VALUES
from services.archive.schemas import DEFAULT_PAGESIZE, MAX_PAGE, MAX_PAGESIZE

__all__ = ["IdsParam", "IncludeSupersededParam", "ListParam", "PageParam", "PageSizeParam", "RevisionParam", "set_total"]

ListParam = Annotated[
    list[str] | None,
    Query(description="One or more values (repeat the parameter or separate with commas); "
                      "ORed; '*' wildcards; a '!' prefix excludes."),
]
PageParam = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page number, 1-based (at most {MAX_PAGE}).")]
IdsParam = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_INT)]] | None,
    Query(max_length=MAX_VALUES, description=f"Catalog ids (at most {MAX_VALUES})."),
]
RevisionParam = Annotated[int | None, Query(ge=1, le=MAX_INT, description=(
    "A given revision instead of the current one (an earlier, superseded one; a revision a reprocessing "
    "request staged or abandoned is served to operators only)."))]
IncludeSupersededParam = Annotated[bool, Query(description=(
    "Also earlier revisions (is_current false); those a reprocessing request staged or abandoned are "
    "listed to operators only."))]
PageSizeParam = Annotated[
    int, Query(ge=1, le=MAX_PAGESIZE, description=f"Rows per page (default {DEFAULT_PAGESIZE}, max {MAX_PAGESIZE}).")
]


def set_total(response: Response, total: int) -> None:
    """Also give the total as a header, for clients that only look at headers."""
    response.headers["X-Total-Count"] = str(total)
