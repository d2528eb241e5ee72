"""Label Studio labeling configs (XML) and task data, derived from a job's schema.

Pure functions, no I/O. ``label_config`` builds the XML a project shows to labelers;
``render_digit_png`` and ``tabular_html`` build the task data the config refers to. Every task
that goes with these configs carries, in its ``data``:

- ``DATA_KEYS[kind]`` (``"text"``, ``"image"`` or ``"html"``): the item itself;
- ``"route_reason"``: why the item was sent to a person (shown above the item);
- ``"item_id"``: labelgate's id of the item (task identity, not shown).

The choice control is always named ``CHOICES_NAME`` and points at the item's object tag
(``OBJECT_NAMES[kind]``), so a prediction or annotation result reads
``{"from_name": "label", "to_name": <OBJECT_NAMES[kind]>, "type": "choices",
"value": {"choices": [<class name>]}}``.
"""

from __future__ import annotations

import base64
import html
import math
import struct
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Mapping, Sequence
from typing import Literal

from labelgate.errors import SpecError, preview

Kind = Literal["text", "image", "tabular"]

#: The name of the ``<Choices>`` control (``from_name`` of results).
CHOICES_NAME = "label"
#: The name of the object tag that shows the item, per kind (``to_name`` of results).
OBJECT_NAMES: dict[str, str] = {"text": "text", "image": "image", "tabular": "table"}
#: The key of the task data that holds the item, per kind.
DATA_KEYS: dict[str, str] = {"text": "text", "image": "image", "tabular": "html"}
#: Task data keys labelgate adds to every task.
ROUTE_REASON_KEY = "route_reason"
ITEM_ID_KEY = "item_id"
ITEM_HASH_KEY = "item_hash"  # the content the task was made from (labelstudio.content_hash)
SUPERSEDED_KEY = "superseded_item_id"  # a task set aside when its item changed (supersede_tasks)


def label_config(classes: Sequence[str], *, kind: Kind, instructions: str = "") -> str:
    """Build the Label Studio labeling config for a single-choice classification.

    Parameters
    ----------
    classes
        The class names, in the spec's order; each becomes a ``<Choice>``. Non-empty, unique,
        no blank names.
    kind
        ``"text"`` (a ``<Text>`` of ``$text``), ``"image"`` (an ``<Image>`` of ``$image``, for
        example a data URI from ``render_digit_png``) or ``"tabular"`` (a ``<HyperText>`` of
        ``$html``, an HTML table from ``tabular_html``).
    instructions
        Shown as a header above the item (the project's own instructions panel is set by the
        adapter as well). Any text: XML special characters are escaped.

    Returns
    -------
    str
        The ``<View>`` XML. The routing reason (``$route_reason``) is shown under the header;
        the choice is single and required.
    """
    if kind not in OBJECT_NAMES:
        raise SpecError(f"label config kind {kind!r} is not one of: {preview(OBJECT_NAMES)}")
    names = [str(name) for name in classes]
    if not names:
        raise SpecError("label config needs at least one class; got an empty class list")
    blank = [name for name in names if not name.strip()]
    if blank:
        raise SpecError(f"label config classes must not be blank; got {preview(blank)}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SpecError(f"label config classes must be unique; repeated: {preview(duplicates)}")

    view = ET.Element("View")
    if instructions.strip():
        ET.SubElement(view, "Header", value=instructions.strip(), size="5")
    reason = ET.SubElement(view, "View", style="margin-bottom: 8px; color: #555")
    ET.SubElement(reason, "Header", value="Why you see this item:", size="6")
    ET.SubElement(reason, "Text", name=ROUTE_REASON_KEY, value=f"${ROUTE_REASON_KEY}")

    object_name = OBJECT_NAMES[kind]
    value = f"${DATA_KEYS[kind]}"
    if kind == "text":
        ET.SubElement(view, "Text", name=object_name, value=value)
    elif kind == "image":
        ET.SubElement(view, "Image", name=object_name, value=value, maxWidth="256px", zoom="true")
    else:
        ET.SubElement(view, "HyperText", name=object_name, value=value)

    choices = ET.SubElement(
        view,
        "Choices",
        name=CHOICES_NAME,
        toName=object_name,
        choice="single-radio",
        required="true",
        requiredMessage="Pick one class, or skip the task.",
    )
    for name in names:
        ET.SubElement(choices, "Choice", value=name)
    ET.indent(view, space="  ")
    return ET.tostring(view, encoding="unicode")


def render_digit_png(
    pixels_8x8: Sequence[float] | Sequence[Sequence[float]], *, scale: int = 8, max_value: float = 16.0
) -> str:
    """Render a small grayscale image (e.g. an sklearn digit) as a PNG data URI.

    Parameters
    ----------
    pixels_8x8
        A square grid of intensities, ``0`` (background) to ``max_value`` (ink): an 8x8 nested
        sequence or array, or a flat sequence of 64 values (any square size works).
    scale
        Each pixel becomes a ``scale`` x ``scale`` block (default 8: 64x64 pixels), so the
        labeler sees more than a speck.
    max_value
        The intensity of full ink (16 for ``sklearn.datasets.load_digits``).

    Returns
    -------
    str
        ``"data:image/png;base64,..."`` of an 8-bit grayscale PNG, dark ink on white
        (a few hundred bytes).
    """
    rows = _square_grid(pixels_8x8)
    if scale < 1:
        raise ValueError(f"scale must be >= 1; got {scale}")
    if not max_value > 0:
        raise ValueError(f"max_value must be > 0; got {max_value}")
    raw = bytearray()
    for row in rows:
        line = bytearray()
        for value in row:
            ink = min(max(float(value) / max_value, 0.0), 1.0) if math.isfinite(value) else 0.0
            line += bytes([round(255 * (1.0 - ink))]) * scale
        for _ in range(scale):
            raw += b"\x00" + line  # filter type 0 (None) per scanline
    size = len(rows) * scale
    png = b"\x89PNG\r\n\x1a\n"
    png += _png_chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
    png += _png_chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    png += _png_chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def tabular_html(row: Mapping[str, object]) -> str:
    """Render one tabular item as a two-column HTML table (feature, value) for ``<HyperText>``.

    Parameters
    ----------
    row
        Feature name -> value. Floats are shown with 4 significant digits; ``None`` and NaN as
        an empty cell. Names and values are HTML-escaped.

    Returns
    -------
    str
        ``<table>...</table>``, one ``<tr>`` per feature, in the row's order.
    """
    lines = ['<table style="border-collapse: collapse; font-family: monospace">']
    cell = 'style="border: 1px solid #ccc; padding: 2px 8px; text-align: left"'
    for name, value in row.items():
        lines.append(
            f"<tr><th {cell}>{html.escape(str(name))}</th>"
            f"<td {cell}>{html.escape(_format_cell(value))}</td></tr>"
        )
    lines.append("</table>")
    return "".join(lines)


def _format_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _format_cell(value.item())
    return str(value)


def _square_grid(pixels: Sequence[float] | Sequence[Sequence[float]]) -> list[list[float]]:
    values = list(pixels.tolist() if hasattr(pixels, "tolist") else pixels)
    if values and all(not isinstance(v, (list, tuple)) for v in values):
        side = math.isqrt(len(values))
        if side * side != len(values):
            raise ValueError(f"expected a square image; got {len(values)} flat values")
        return [[float(v) for v in values[i * side : (i + 1) * side]] for i in range(side)]
    rows = [[float(v) for v in row] for row in values]
    if not rows or any(len(row) != len(rows) for row in rows):
        shape = f"{len(rows)} rows of lengths {preview(sorted({len(r) for r in rows}))}"
        raise ValueError(f"expected a square image; got {shape}")
    return rows


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + tag
        + payload
        + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF)
    )
