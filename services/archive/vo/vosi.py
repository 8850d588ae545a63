"""VOSI documents of a VO service (IVOA VOSI 1.1): its capabilities, what a client reads to
find the query endpoint (pyvo's ``SIA2Service(url)`` reads ``<url>/capabilities``), its
availability, and, for TAP, its tableset (the published tables and columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

from shared.catalog.tap_schema import PublishedTable

__all__ = ["Capability", "availability_xml", "capabilities_xml", "service_capabilities", "tableset_xml",
           "tap_capability"]

_VOSI_CAP = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
_VOSI_AVAIL = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
_VS = "http://www.ivoa.net/xml/VODataService/v1.1"
_VR = "http://www.ivoa.net/xml/VOResource/v1.0"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_VOSI_TABLES = "http://www.ivoa.net/xml/VOSITables/v1.0"
_TR = "http://www.ivoa.net/xml/TAPRegExt/v1.0"

XML = "text/xml"


@dataclass(frozen=True)
class Capability:
    """One capability: its standard, the URL of its interface, and, for a standard
    interface, the role and version; ``extra`` are child elements after the interface
    (name, text) and ``xsi_type`` the capability's own type (e.g. ``cs:ConeSearch``);
    ``security`` the interface's security methods (their standardIDs, None for anonymous),
    which pyvo's ``AuthSession`` reads to know what credentials a URL takes."""

    standard_id: str | None  # None: a capability of no standard (e.g. where a service's links lead)
    url: str
    use: str = "full"
    version: str | None = None
    std: bool = False
    xsi_type: str | None = None
    namespaces: dict[str, str] = field(default_factory=dict)
    extra: Sequence[tuple[str, str]] = ()
    elements: Sequence[ET.Element] = ()
    security: Sequence[str | None] = ()  # the interface's securityMethods; None: anonymous
    description: str | None = None


def service_capabilities(base: str, standard: Capability) -> list[Capability]:
    """The capabilities of a service at ``base`` (absolute URL, no trailing slash): its
    VOSI endpoints and its own ``standard`` capability."""
    return [Capability("ivo://ivoa.net/std/VOSI#capabilities", f"{base}/capabilities"),
            Capability("ivo://ivoa.net/std/VOSI#availability", f"{base}/availability"),
            standard]


def capabilities_xml(capabilities: Sequence[Capability]) -> bytes:
    namespaces = {"vosi": _VOSI_CAP, "vs": _VS, "vr": _VR, "xsi": _XSI}
    for cap in capabilities:
        namespaces.update(cap.namespaces)
    root = ET.Element("vosi:capabilities", {f"xmlns:{k}": v for k, v in namespaces.items()})
    for cap in capabilities:
        attrs = {"standardID": cap.standard_id} if cap.standard_id else {}
        if cap.xsi_type:
            attrs["xsi:type"] = cap.xsi_type
        element = ET.SubElement(root, "capability", attrs)
        if cap.description:
            ET.SubElement(element, "description").text = cap.description
        iface = {"xsi:type": "vs:ParamHTTP"}
        if cap.std:
            iface["role"] = "std"
        if cap.version:
            iface["version"] = cap.version
        interface = ET.SubElement(element, "interface", iface)
        ET.SubElement(interface, "accessURL", {"use": cap.use}).text = cap.url
        for method in cap.security:
            ET.SubElement(interface, "securityMethod", {"standardID": method} if method else {})
        for name, text in cap.extra:
            ET.SubElement(element, name).text = text
        element.extend(cap.elements)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def availability_xml(available: bool, note: str | None = None) -> bytes:
    root = ET.Element("vosi:availability", {"xmlns:vosi": _VOSI_AVAIL})
    ET.SubElement(root, "vosi:available").text = "true" if available else "false"
    if note:
        ET.SubElement(root, "vosi:note").text = note
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


GEOMETRY_FUNCTIONS = ("POINT", "CIRCLE", "BOX", "POLYGON", "CONTAINS", "INTERSECTS", "DISTANCE")
"""ADQL geometry queryparser-python3 translates to pg_sphere."""


def tap_capability(tap_url: str, *, max_rec: int, timeout_seconds: float, retention_seconds: int) -> Capability:
    """The TAP 1.1 capability (TAPRegExt) of the service at ``tap_url``: ADQL 2.0 with its
    geometry, VOTable output, MAXREC default and hard limit, execution duration, retention."""
    language = ET.Element("language")
    _sub(language, "name", "ADQL")
    _sub(language, "version", "2.0", **{"ivo-id": "ivo://ivoa.net/std/ADQL#v2.0"})
    _sub(language, "description", "ADQL 2.0, translated to PostgreSQL with pg_sphere geometry")
    features = _sub(language, "languageFeatures", type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo")
    for form in GEOMETRY_FUNCTIONS:
        _sub(_sub(features, "feature"), "form", form)
    model = ET.Element("dataModel", {"ivo-id": "ivo://ivoa.net/std/ObsCore#core-1.1"})
    model.text = "ObsCore-1.1"
    fmt = ET.Element("outputFormat", {"ivo-id": "ivo://ivoa.net/std/TAPRegExt#output-votable-td"})
    _sub(fmt, "mime", "application/x-votable+xml")
    _sub(fmt, "alias", "votable")
    retention = ET.Element("retentionPeriod")
    _sub(retention, "default", str(retention_seconds))
    duration = ET.Element("executionDuration")
    _sub(duration, "default", f"{timeout_seconds:g}")
    limit = ET.Element("outputLimit")
    _sub(limit, "default", str(max_rec), unit="row")
    _sub(limit, "hard", str(max_rec), unit="row")
    return Capability("ivo://ivoa.net/std/TAP", tap_url, use="base", version="1.1", std=True,
                      xsi_type="tr:TableAccess", namespaces={"tr": _TR},
                      elements=(model, language, fmt, retention, duration, limit))


def tableset_xml(schemas: dict[str, str], tables: Sequence[PublishedTable]) -> bytes:
    """The VOSI tableset of ``tables``, grouped under ``schemas`` (name -> description): every column's datatype, unit, UCD,
    utype and flags."""
    root = ET.Element("vtm:tableset", {"xmlns:vtm": _VOSI_TABLES, "xmlns:vs": _VS, "xmlns:xsi": _XSI})
    for schema_name, description in schemas.items():
        schema = _sub(root, "schema")
        _sub(schema, "name", schema_name)
        _sub(schema, "description", description)
        for table in (t for t in tables if t.schema == schema_name):
            element = _sub(schema, "table", type=table.table_type)
            _sub(element, "name", table.qualified)
            _sub(element, "description", table.description)
            if table.utype:
                _sub(element, "utype", table.utype)
            for c in table.columns:
                column = _sub(element, "column", std="true" if c.std else "false")
                _sub(column, "name", c.name)
                _sub(column, "description", c.description)
                for tag in ("unit", "ucd", "utype"):
                    if getattr(c, tag):
                        _sub(column, tag, getattr(c, tag))
                attrib = {"xsi:type": "vs:VOTableType"}
                if c.arraysize:
                    attrib["arraysize"] = c.arraysize
                if c.xtype:
                    attrib["extendedType"] = c.xtype
                _sub(column, "dataType", c.datatype, **attrib)
                for flag in ("indexed", "principal"):
                    if getattr(c, flag):
                        _sub(column, "flag", flag)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)
