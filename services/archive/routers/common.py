"""Query parameters shared by the search routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from services.archive.schemas import DEFAULT_PAGESIZE, MAX_PAGESIZE

__all__ = ["ListParam", "PageParam", "PageSizeParam", "set_total"]

ListParam = Annotated[
    list[str] | None,
    Query(description="One or more values (repeat the parameter or separate with commas); "
                      "ORed; '*' wildcards; a '!' prefix excludes."),
]
PageParam = Annotated[int, Query(ge=1, description="Page number, 1-based.")]
PageSizeParam = Annotated[
    int, Query(ge=1, le=MAX_PAGESIZE, description=f"Rows per page (default {DEFAULT_PAGESIZE}, max {MAX_PAGESIZE}).")
]


def set_total(response: Response, total: int) -> None:
    """Also give the total as a header, for clients that only look at headers."""
    response.headers["X-Total-Count"] = str(total)
