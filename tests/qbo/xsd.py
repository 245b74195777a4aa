"""Check JSON request bodies against Intuit's XSD: map JSON to the equivalent XML and validate it.

JSON keys become child elements in the order the schema's sequence wants (JSON has no order);
keys that are attributes of the type (`sparse`, a reference's `name`/`type`) become attributes; a
reference's `value` becomes its text. A key the type does not declare fails at once, and the XML is
then validated in full (types, enums, nesting) by xmlschema. Required `*Ex` placeholders (internal
to Intuit) are filled with an empty element.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

import xmlschema

from tests.support.specs import spec_dir

XSD_DIR = spec_dir("qbo")  # Intuit's XSDs (Apache-2.0, from Intuit's PHP SDK)
NS = "http://schema.intuit.com/finance/v3"


@functools.cache
def schema() -> xmlschema.XMLSchema:
    assert XSD_DIR is not None
    return xmlschema.XMLSchema(str(XSD_DIR / "IntuitRestServiceDef.xsd"))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _fill(node: ET.Element, xsd_type: Any, data: dict[str, Any], path: str) -> None:
    if xsd_type.has_simple_content():
        node.text = _text(data["value"])
        for key, value in data.items():
            if key != "value":
                if key not in xsd_type.attributes:
                    raise AssertionError(f"{path}: {key!r} is not an attribute of {xsd_type.local_name}")
                node.set(key, _text(value))
        return
    children = {e.local_name: (i, e) for i, e in enumerate(xsd_type.content.iter_elements())}
    ordered = []
    for key, value in data.items():
        if key in getattr(xsd_type, "attributes", {}):
            node.set(key, _text(value))
            continue
        if key not in children:
            raise AssertionError(f"{path}: no element {key!r} in {xsd_type.local_name}")
        ordered.append((children[key][0], key, value))
    for name, (index, element) in children.items():
        # Finance.xsd marks a few "internal use only" extension placeholders (e.g. TransferEx) as
        # required; the JSON API never sends them, so an empty one stands in.
        if name and name.endswith("Ex") and element.min_occurs >= 1 and name not in data:
            ordered.append((index, name, {}))
    for _, key, value in sorted(ordered, key=lambda t: t[0]):
        element = children[key][1]
        for item in value if isinstance(value, list) else [value]:
            child = ET.SubElement(node, f"{{{NS}}}{key}")
            if isinstance(item, dict):
                _fill(child, element.type, item, f"{path}.{key}")
            else:
                child.text = _text(item)


def to_xml(entity: str, body: dict[str, Any]) -> ET.Element:
    element = schema().elements[entity]
    root = ET.Element(f"{{{NS}}}{entity}")
    _fill(root, element.type, body, entity)
    return root


def validate(entity: str, body: dict[str, Any]) -> None:
    """Raise if `body` is not a valid `entity` per Finance.xsd."""
    schema().validate(ET.tostring(to_xml(entity, body)))
