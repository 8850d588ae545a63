"""TAP: ADQL queries over ``ivoa.obscore`` and ``tap_schema`` (TAP 1.1, DALI 1.1).

A request is its parameters (names case-insensitive, :func:`parse_request`); the ADQL is
translated to PostgreSQL with pg_sphere geometry by queryparser-python3
(:func:`translate`), which also reports every table the query reads: a table that is not
published (:data:`shared.catalog.tap_schema.PUBLISHED`) is refused, and so is more than one
statement. :func:`execute` then runs the translated SQL in a READ ONLY transaction under a
statement timeout, reads at most MAXREC rows (one more tells OVERFLOW) and writes the VOTable:
a column that PostgreSQL reports as a plain reference to a published column keeps that
column's metadata (ObsCore's units and UCDs), under its alias too; a computed one gets a
datatype from PostgreSQL's type of the result. ``access_url`` values become absolute.

Every refusal is a :class:`TapError`, whose message says what to change; the route answers it
with HTTP 400 and a VOTable error document.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.engine import Engine

from services.archive.vo.votable import VOField, error_votable, obscore_fields, result_votable
from shared.catalog.obscore import absolute_url
from shared.catalog.tap_schema import PUBLISHED, PublishedColumn, PublishedTable, published_table

__all__ = ["FORMATS", "LANGUAGES", "TapError", "TapQuery", "TapUnavailable", "execute", "parse_request",
           "translate", "translation_state", "warm_translation"]

log = logging.getLogger(__name__)

LANGUAGES = ("ADQL", "ADQL-2.0", "ADQL-2.1")
"""What LANG may say (ADQL, as queryparser-python3 reads it)."""

FORMATS = ("votable", "application/x-votable+xml", "text/xml",
           "application/x-votable+xml;serialization=tabledata")
"""What FORMAT/RESPONSEFORMAT may say: every one is a VOTable."""


class TapError(Exception):
    """A query or parameter the service cannot answer; the message says why (HTTP 400)."""


class TapUnavailable(Exception):
    """The catalog cannot run TAP queries (SQLite, or the database failed): HTTP 503."""


@dataclass(frozen=True)
class TapQuery:
    """A validated TAP request."""

    adql: str
    maxrec: int


def _params(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Parameters by upper-cased name; the last value of a repeated one wins."""
    return {k.upper(): v for k, v in items}


def parse_request(items: Iterable[tuple[str, str]], default_maxrec: int) -> TapQuery:
    """The TAP query that ``items`` (name, value pairs of the query string and form) ask for.

    ``default_maxrec`` is also the hard limit: a larger MAXREC is lowered to it."""
    params = _params(items)
    request = params.get("REQUEST", "doQuery").strip()
    if request.lower() != "doquery":
        raise TapError(f"REQUEST={request!r} is not supported: the only request is doQuery")
    lang = params.get("LANG", "ADQL").strip()
    if lang.upper() not in LANGUAGES:
        raise TapError(f"LANG={lang!r} is not supported: this service speaks ADQL (LANG=ADQL)")
    for name in ("RESPONSEFORMAT", "FORMAT"):
        fmt = params.get(name)
        if fmt is not None and fmt.strip().lower().replace(" ", "") not in FORMATS:
            raise TapError(f"{name}={fmt!r} is not supported: results are VOTables ({name}=votable)")
    adql = params.get("QUERY", "").strip()
    if not adql:
        raise TapError("QUERY is missing: give an ADQL query, e.g. QUERY=SELECT TOP 10 * FROM ivoa.obscore")
    maxrec = default_maxrec
    if (text := params.get("MAXREC")) is not None:
        try:
            maxrec = int(text.strip())
        except ValueError:
            raise TapError(f"MAXREC={text!r} is not an integer") from None
        if maxrec < 0:
            raise TapError(f"MAXREC={text!r} is negative: give a number of rows, 0 or more")
        maxrec = min(maxrec, default_maxrec)
    return TapQuery(adql, maxrec)


def _single_statement(adql: str) -> str:
    """``adql`` without a final ``;``; a ``;`` before anything else is a second statement."""
    quote = None
    for i, ch in enumerate(adql):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == ";":
            if adql[i + 1:].strip():
                raise TapError("the query holds more than one statement: send one SELECT")
            return adql[:i]
    return adql


_SYNTAX = re.compile(r"\((\d+), (\d+), '((?:[^'\\]|\\.)*)'\)")


def _syntax_message(exc: Exception, adql: str) -> str:
    where = [f"line {line}, column {col} near {token!r}" for line, col, token in _SYNTAX.findall(str(exc))]
    if where:
        return f"ADQL syntax error at {'; '.join(where)} (query: {adql})"
    return f"ADQL not understood: {exc} (query: {adql})"


_FROM = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.\"]*)", re.IGNORECASE)


def _published_names() -> str:
    return ", ".join(t.qualified for t in PUBLISHED)


@dataclass(frozen=True)
class Translation:
    sql: str
    tables: tuple[PublishedTable, ...]


# A numeric literal of ADQL outside quotes (not part of a name such as s_xel1).
_LITERAL = re.compile(r"(?:-\s*)?(?<![\w.])(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")
_SENTINEL = 7_310_000_000_000  # the k-th literal of a template is written as _SENTINEL + k


def _template(adql: str) -> tuple[str, list[str]]:
    """``adql`` with each numeric literal outside quotes replaced by a sentinel number, and
    the literals in order: queries that differ only in their numbers (a cone about another
    position) share one template, so one translation."""
    literals: list[str] = []
    out: list[str] = []
    quoted = re.split(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")", adql)
    for i, part in enumerate(quoted):
        if i % 2:  # a quoted string or name: as it is
            out.append(part)
            continue

        def sentinel(match: re.Match, part: str = part) -> str:
            text, sign = match.group(0), ""
            before = part[:match.start()].rstrip()
            if text.startswith("-") and not before.endswith(("(", ",", "=", "<", ">")):
                sign, text = text[:-len(text.lstrip("-").lstrip())], text.lstrip("-").lstrip()  # a - b
            if before.endswith("=") and before[:-1].rstrip().endswith(")"):
                return match.group(0)  # CONTAINS(...) = 1: part of the predicate's form
            literals.append(text)
            return sign + str(_SENTINEL + len(literals) - 1)

        out.append(_LITERAL.sub(sentinel, part))
    return "".join(out), literals


def _restore(sql: str, literals: list[str]) -> str | None:
    """The SQL of a template with its literals put back; None when a sentinel did not come
    through the translation as it went in (then the query is translated as it is)."""
    for k, literal in enumerate(literals):
        pattern = re.compile(rf"(?<![\w.]){_SENTINEL + k}(?:\.0)?(?![\w.])")  # geometry writes it as a float
        if not pattern.search(sql):
            return None
        sql = pattern.sub(literal, sql)
    return sql


def translate(adql: str) -> Translation:
    """The PostgreSQL of the ADQL query ``adql``, and the published tables it reads.

    Translation (two parses by queryparser's ANTLR grammars, some 0.5 s of CPU) is cached by
    the query's template (:func:`_template`): the same query with other numbers costs a
    substitution.

    Raises
    ------
    TapError
        for a syntax error, more than one statement, or a table that is not published.
    """
    adql = _single_statement(adql).strip()
    template, literals = _template(adql)
    with _PARSING:
        try:
            cached = _translate_cached(template)
        except TapError:
            return _translate(adql)  # the error, told of the query as it was sent
        sql = _restore(cached.sql, literals)
        return Translation(sql, cached.tables) if sql is not None else _translate(adql)


def _translate(adql: str) -> Translation:
    from queryparser.adql import ADQLQueryTranslator
    from queryparser.exceptions import QueryError, QuerySyntaxError
    from queryparser.postgresql import PostgreSQLQueryProcessor

    try:
        sql = ADQLQueryTranslator(adql).to_postgresql()
    except QuerySyntaxError as exc:
        raise TapError(_syntax_message(exc, adql)) from None
    except Exception as exc:  # the translator's failures on input it cannot read are of many kinds
        raise TapError(f"ADQL not understood: {exc or type(exc).__name__} (query: {adql})") from None
    sql = _single_statement(sql).strip()
    processor = PostgreSQLQueryProcessor()
    try:
        processor.set_query(sql)
        processor.process_query()
    except QuerySyntaxError as exc:
        raise TapError(_syntax_message(exc, adql) + "; only ADQL functions may be called") from None
    except QueryError as exc:
        if "schema" in str(exc).lower():
            names = ", ".join(sorted({n for n in _FROM.findall(adql) if "." not in n})) or "a table"
            raise TapError(f"{names} is not a table of this service (name tables with their schema): "
                           f"only {_published_names()} may be queried") from None
        raise TapError(f"ADQL not understood: {exc} (query: {adql})") from None
    except Exception as exc:  # as above: input the processor cannot read
        raise TapError(f"ADQL not understood: {exc or type(exc).__name__} (query: {adql})") from None
    tables = []
    for schema, name in processor.tables:
        table = published_table(schema, name) if name else None
        if table is None:
            qualified = f"{schema}.{name}" if schema else str(name)
            raise TapError(f"{qualified} is not a table of this service: only {_published_names()} may be queried")
        tables.append(table)
    return Translation(sql, tuple(dict.fromkeys(tables)))


_translate_cached = functools.lru_cache(maxsize=256)(_translate)

# One translation at a time per process: a miss is CPU-bound (the GIL serializes it anyway), and
# concurrent misses of one shape would each pay for it
_PARSING = threading.Lock()

_WARM_UP = ("SELECT TOP 100 obs_id, s_ra, s_dec, calib_level, access_url FROM ivoa.obscore WHERE "
            "CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10.0, -20.0, 1.0)) = 1 AND calib_level >= 2")


_WARMED = threading.Event()


def warm_translation(then: Callable[[], None] | None = None) -> None:
    """Translate a cone query once, so the process's first TAP query does not also pay for
    loading and warming queryparser's grammars (1 to 2 s of CPU); run at the API's start.
    ``then`` runs after it, before the process says it is ready."""
    try:
        translate(_WARM_UP)
    except Exception:  # a warm-up only: the first query will say what is wrong
        log.exception("could not warm the ADQL translation")
    finally:
        try:
            if then is not None:
                then()
        finally:
            _WARMED.set()


def translation_state() -> str:
    """``ready`` once this process's warm-up (:func:`warm_translation`) has ended, else ``warming``."""
    return "ready" if _WARMED.is_set() else "warming"


# PostgreSQL type OIDs of a result column -> VOTable datatype (anything else is written as text)
_OID_DATATYPES = {16: "boolean", 20: "long", 21: "short", 23: "int", 26: "long", 700: "float", 701: "double",
                  1700: "double"}
_TIMESTAMPS = {1082, 1114, 1184}
_NUMERIC = {"boolean", "short", "int", "long", "float", "double"}  # VOTable types written as numbers


def _published_field(name: str, column: PublishedColumn) -> VOField:
    return VOField(name, "unicodeChar" if column.datatype == "char" else column.datatype, column.unit,
                   column.ucd, column.utype, column.description, column.xtype)


def _obscore_fields() -> dict[str, VOField]:
    return {f.name: f for f in obscore_fields()}


def _family(datatype: str) -> str:
    if datatype in ("short", "int", "long"):
        return "integer"
    return "real" if datatype in ("float", "double") else datatype if datatype == "boolean" else "text"


def _field(out: str, oid: int, tables: Sequence[PublishedTable], obscore: dict[str, VOField]) -> VOField:
    """The FIELD of a result column named ``out``, of PostgreSQL type ``oid``: the metadata of
    the column of that name of a table the query reads, when its type agrees (a column shown
    under its own name), else only a datatype from ``oid`` (a computed or renamed column)."""
    datatype = _OID_DATATYPES.get(oid, "unicodeChar")
    for table in tables:
        column = next((c for c in table.columns if c.name == out), None)
        if column is None:
            continue
        field = obscore[column.name] if table.qualified == "ivoa.obscore" else _published_field(out, column)
        if _family(field.datatype) == _family(datatype) or field.xtype == "timestamp":
            return VOField(out, field.datatype, field.unit, field.ucd, field.utype, field.description, field.xtype)
    return VOField(out, datatype, xtype="timestamp" if oid in _TIMESTAMPS else None)


def _unique(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0) + 1
        seen[name] = n
        out.append(name if n == 1 else f"{name}_{n}")
    return out


def _value(value: Any, datatype: str) -> Any:
    if value is None:
        return None
    if datatype in ("double", "float") and not isinstance(value, float):
        return float(value)
    if datatype not in _NUMERIC and not isinstance(value, str):
        return value if hasattr(value, "isoformat") else str(value)
    return value


def execute(engine: Engine, query: TapQuery, *, timeout_seconds: float, base_url: str) -> bytes:
    """Run ``query`` on the catalog ``engine`` (read only, under ``timeout_seconds``); the
    VOTable of its rows. Raises :class:`TapError` for what the caller can fix and
    :class:`TapUnavailable` when the catalog cannot answer."""
    if engine.dialect.name != "postgresql":
        raise TapUnavailable("TAP needs a PostgreSQL catalog (ivoa.obscore and ADQL geometry); "
                             "this archive's catalog is SQLite")
    translation = translate(query.adql)
    sql = f"SELECT * FROM ({translation.sql}) AS tap_result LIMIT {query.maxrec + 1}"
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        try:
            with dbapi.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY")
                cur.execute(f"SET LOCAL statement_timeout = {max(1, round(timeout_seconds * 1000))}")
                cur.execute(sql)
                description = cur.description or []
                rows = cur.fetchall()
        except psycopg.errors.QueryCanceled:
            raise TapError(f"the query ran longer than {timeout_seconds:g} s and was cancelled: restrict it "
                           "(a WHERE on indexed columns, CONTAINS on positions, or TOP)") from None
        except psycopg.Error as exc:
            state = exc.sqlstate or ""
            if state[:2] in ("42", "22", "21", "0A", "25", "2F", "38", "39", "54", "P0") or state.startswith("XX0"):
                message = exc.diag.message_primary or str(exc)
                hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
                raise TapError(f"the query cannot run: {message}{hint}") from None
            raise TapUnavailable(f"the catalog could not run the query: {exc.diag.message_primary or exc}") from exc
        finally:
            with contextlib.suppress(psycopg.Error):  # a broken connection is discarded by the pool
                dbapi.rollback()
    obscore = _obscore_fields()
    names = _unique([d.name for d in description])
    fields = [_field(names[i], d.type_code, translation.tables, obscore) for i, d in enumerate(description)]
    overflow = len(rows) > query.maxrec
    rows = rows[:query.maxrec]
    urls = [i for i, f in enumerate(fields) if f.ucd == "meta.ref.url"]
    out = []
    for row in rows:
        values = [_value(v, fields[i].datatype) for i, v in enumerate(row)]
        for i in urls:
            if isinstance(values[i], str):
                values[i] = absolute_url(values[i], base_url)
        out.append(values)
    return result_votable(fields, out, overflow=overflow, infos={"QUERY": query.adql})


def error_document(exc: Exception) -> bytes:
    """The VOTable error document of a refusal."""
    return error_votable(str(exc))
