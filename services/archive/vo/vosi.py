"""VOSI documents of a VO service (IVOA VOSI 1.1): its capabilities, what a client reads to
find the query endpoint (pyvo's ``SIA2Service(url)`` reads ``<url>/capabilities``), and its
availability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

__all__ = ["Capability", "availability_xml", "capabilities_xml", "service_capabilities"]

_VOSI_CAP = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
_VOSI_AVAIL = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
_VS = "http://www.ivoa.net/xml/VODataService/v1.1"
_VR = "http://www.ivoa.net/xml/VOResource/v1.0"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"

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
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def availability_xml(available: bool, note: str | None = None) -> bytes:
    root = ET.Element("vosi:availability", {"xmlns:vosi": _VOSI_AVAIL})
    ET.SubElement(root, "vosi:available").text = "true" if available else "false"
    if note:
        ET.SubElement(root, "vosi:note").text = note
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)
