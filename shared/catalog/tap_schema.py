"""TAP_SCHEMA: the TAP 1.1 description of what ADQL may query, as tables in the schema ``tap_schema``.

Two schemas are published, and nothing else: ``ivoa`` (the view ``ivoa.obscore``, its columns
from :data:`shared.catalog.obscore.COLUMNS`) and ``tap_schema`` itself (its five tables, their
columns from :data:`TAP_SCHEMA_TABLES`). :data:`PUBLISHED` is that list, read by the TAP route
(which tables a query may name, the VOTable FIELDs of their columns, the VOSI tableset) and
written into the tables by :func:`create_tap_schema`, which
:func:`shared.catalog.db.upgrade` calls beside :func:`shared.catalog.obscore.create_view`
each time a PostgreSQL catalog reaches head. The tables are dropped and refilled then, so they
always say what this module says.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.catalog.obscore import COLUMNS

__all__ = ["PUBLISHED", "SCHEMAS", "TAP_SCHEMA_TABLES", "PublishedColumn", "PublishedTable", "create_tap_schema",
           "published_table"]


@dataclass(frozen=True)
class PublishedColumn:
    """A column as TAP_SCHEMA.columns describes it."""

    name: str
    datatype: str  # VOTable datatype
    description: str
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    xtype: str | None = None
    principal: bool = True
    indexed: bool = False
    std: bool = True

    @property
    def arraysize(self) -> str | None:
        return "*" if self.datatype == "char" else None


@dataclass(frozen=True)
class PublishedTable:
    """A table or view as TAP_SCHEMA.tables describes it."""

    schema: str
    name: str  # unqualified
    table_type: str  # "table" or "view"
    description: str
    columns: tuple[PublishedColumn, ...]
    utype: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def _c(name: str, datatype: str, description: str, **kw) -> PublishedColumn:
    return PublishedColumn(name, datatype, description, **kw)


_TEXT = "char"
TAP_SCHEMA_TABLES: tuple[PublishedTable, ...] = (
    PublishedTable("tap_schema", "schemas", "table", "The schemas this service publishes", (
        _c("schema_name", _TEXT, "Schema name, as queries name it", indexed=True),
        _c("utype", _TEXT, "Utype of the schema"),
        _c("description", _TEXT, "What the schema holds"),
        _c("schema_index", "int", "Suggested order of the schemas"),
    )),
    PublishedTable("tap_schema", "tables", "table", "The tables this service publishes", (
        _c("schema_name", _TEXT, "Schema of the table"),
        _c("table_name", _TEXT, "Table name, qualified by its schema, as queries name it", indexed=True),
        _c("table_type", _TEXT, "table or view"),
        _c("utype", _TEXT, "Utype of the table"),
        _c("description", _TEXT, "What the table holds"),
        _c("table_index", "int", "Suggested order of the tables"),
    )),
    PublishedTable("tap_schema", "columns", "table", "The columns of the published tables", (
        _c("table_name", _TEXT, "Table of the column (qualified)", indexed=True),
        _c("column_name", _TEXT, "Column name"),
        _c("datatype", _TEXT, "VOTable datatype of the column"),
        _c("arraysize", _TEXT, "VOTable arraysize of the column"),
        _c("xtype", _TEXT, "VOTable xtype of the column"),
        _c("size", "int", "Length of the column (deprecated by TAP 1.1; NULL)"),
        _c("description", _TEXT, "What the column holds"),
        _c("utype", _TEXT, "Utype of the column"),
        _c("unit", _TEXT, "Unit of the column (VOUnit)"),
        _c("ucd", _TEXT, "UCD of the column"),
        _c("indexed", "int", "1 when the column is indexed, else 0"),
        _c("principal", "int", "1 when the column is principal, else 0"),
        _c("std", "int", "1 when a standard defines the column, else 0"),
        _c("column_index", "int", "Suggested order of the columns"),
    )),
    PublishedTable("tap_schema", "keys", "table", "Foreign keys between published tables", (
        _c("key_id", _TEXT, "Key id", indexed=True),
        _c("from_table", _TEXT, "Table holding the key"),
        _c("target_table", _TEXT, "Table the key points at"),
        _c("description", _TEXT, "What the key means"),
        _c("utype", _TEXT, "Utype of the key"),
    )),
    PublishedTable("tap_schema", "key_columns", "table", "Columns of the foreign keys", (
        _c("key_id", _TEXT, "Key id", indexed=True),
        _c("from_column", _TEXT, "Column of from_table"),
        _c("target_column", _TEXT, "Column of target_table"),
    )),
)

OBSCORE_TABLE = PublishedTable(
    "ivoa", "obscore", "view", "IVOA ObsCore 1.1: one row per observation (Level-3 product, or exposure "
    "and detector) of the archive; metadata are public, data behind access_url follow exclusive access",
    tuple(PublishedColumn(c.name, c.datatype, c.description, c.unit, c.ucd, c.utype, c.xtype, c.principal,
                          c.indexed, c.utype is not None and c.utype.startswith("obscore:")) for c in COLUMNS),
    utype="ivo://ivoa.net/std/ObsCore#table-1.1",
)

SCHEMAS: dict[str, str] = {
    "ivoa": "IVOA standard tables: ObsCore",
    "tap_schema": "TAP 1.1 description of the published schemas, tables and columns",
}

PUBLISHED: tuple[PublishedTable, ...] = (OBSCORE_TABLE, *TAP_SCHEMA_TABLES)
"""Every table a TAP query may name, in the order the tableset lists them."""


def published_table(schema: str | None, name: str) -> PublishedTable | None:
    """The published table ``schema.name`` (case-insensitive), or None."""
    key = f"{(schema or '').lower()}.{name.lower()}"
    return next((t for t in PUBLISHED if t.qualified == key), None)


_DDL = {
    "schemas": "schema_name varchar(64) PRIMARY KEY, utype varchar(512), description varchar(512), "
               "schema_index integer",
    "tables": "schema_name varchar(64) NOT NULL, table_name varchar(128) PRIMARY KEY, table_type varchar(8) "
              "NOT NULL, utype varchar(512), description varchar(512), table_index integer",
    "columns": "table_name varchar(128) NOT NULL, column_name varchar(64) NOT NULL, datatype varchar(64) "
               "NOT NULL, arraysize varchar(16), xtype varchar(64), size integer, description varchar(512), "
               "utype varchar(512), unit varchar(64), ucd varchar(64), indexed integer NOT NULL, "
               "principal integer NOT NULL, std integer NOT NULL, column_index integer, "
               "PRIMARY KEY (table_name, column_name)",
    "keys": "key_id varchar(64) PRIMARY KEY, from_table varchar(128) NOT NULL, target_table varchar(128) "
            "NOT NULL, description varchar(512), utype varchar(512)",
    "key_columns": "key_id varchar(64) NOT NULL, from_column varchar(64) NOT NULL, target_column varchar(64) "
                   "NOT NULL",
}


def create_tap_schema(conn: Connection) -> None:
    """(Re)create the schema ``tap_schema`` of a PostgreSQL catalog and fill it from :data:`PUBLISHED`."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(text("DROP SCHEMA IF EXISTS tap_schema CASCADE"))
    conn.execute(text("CREATE SCHEMA tap_schema"))
    conn.execute(text("COMMENT ON SCHEMA tap_schema IS 'TAP 1.1 metadata (shared.catalog.tap_schema)'"))
    for table, ddl in _DDL.items():
        conn.execute(text(f"CREATE TABLE tap_schema.{table} ({ddl})"))
    for i, (schema, description) in enumerate(SCHEMAS.items()):
        conn.execute(text("INSERT INTO tap_schema.schemas VALUES (:s, NULL, :d, :i)"),
                     {"s": schema, "d": description, "i": i})
    for i, table in enumerate(PUBLISHED):
        conn.execute(text("INSERT INTO tap_schema.tables VALUES (:s, :t, :k, :u, :d, :i)"),
                     {"s": table.schema, "t": table.qualified, "k": table.table_type, "u": table.utype,
                      "d": table.description, "i": i})
        conn.execute(
            text("INSERT INTO tap_schema.columns VALUES (:t, :c, :dt, :a, :x, NULL, :d, :u, :unit, :ucd, "
                 ":ix, :p, :std, :i)"),
            [{"t": table.qualified, "c": c.name, "dt": c.datatype, "a": c.arraysize, "x": c.xtype,
              "d": c.description, "u": c.utype, "unit": c.unit, "ucd": c.ucd, "ix": int(c.indexed),
              "p": int(c.principal), "std": int(c.std), "i": j} for j, c in enumerate(table.columns)])
