"""Label Studio configs and task data built from a job's schema (pure, no server)."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from labelgate.errors import SpecError
from labelgate.labelconfig import (
    CHOICES_NAME,
    DATA_KEYS,
    OBJECT_NAMES,
    label_config,
    render_digit_png,
    tabular_html,
)


@pytest.mark.parametrize(("kind", "tag"), [("text", "Text"), ("image", "Image"), ("tabular", "HyperText")])
def test_config_shows_the_item_with_the_right_tag_and_single_required_choice(kind, tag) -> None:
    root = ET.fromstring(label_config(["cat", "dog"], kind=kind))

    item = root.find(f"./{tag}[@name='{OBJECT_NAMES[kind]}']")
    assert item is not None and item.get("value") == f"${DATA_KEYS[kind]}"
    choices = root.find("./Choices")
    assert choices.get("name") == CHOICES_NAME
    assert choices.get("toName") == OBJECT_NAMES[kind]
    assert choices.get("choice") == "single-radio" and choices.get("required") == "true"
    assert [c.get("value") for c in choices.findall("Choice")] == ["cat", "dog"]


def test_config_shows_the_routing_reason_to_labelers() -> None:
    root = ET.fromstring(label_config(["a", "b"], kind="text"))

    values = [e.get("value") for e in root.iter("Text")]
    assert "$route_reason" in values


def test_class_names_and_instructions_with_xml_characters_survive_escaping() -> None:
    classes = ["R&D", "<script>", 'say "hi"', "naïve café", "it's"]
    instructions = 'Pick the <best> label & mind "quotes"\nsecond line'

    xml = label_config(classes, kind="text", instructions=instructions)
    root = ET.fromstring(xml)

    assert [c.get("value") for c in root.iter("Choice")] == classes
    assert root.find("./Header").get("value") == instructions
    assert "<script>" not in xml


def test_no_instructions_means_no_instructions_header() -> None:
    root = ET.fromstring(label_config(["a", "b"], kind="image"))

    assert root.find("./Header") is None


@pytest.mark.parametrize("classes", [[], ["a", "a"], ["a", " "]])
def test_bad_class_lists_are_refused(classes) -> None:
    with pytest.raises(SpecError, match="class"):
        label_config(classes, kind="text")


def test_unknown_kind_names_the_valid_ones() -> None:
    with pytest.raises(SpecError, match=r"'audio'.*text"):
        label_config(["a", "b"], kind="audio")


def _decode(uri: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :])))


def test_digit_png_is_a_small_valid_grayscale_png_with_ink_dark_on_white() -> None:
    pixels = np.zeros((8, 8))
    pixels[2, 3] = 16  # one full-ink pixel

    uri = render_digit_png(pixels)
    image = _decode(uri)

    assert image.mode == "L" and image.size == (64, 64)
    assert image.getpixel((3 * 8 + 4, 2 * 8 + 4)) == 0  # ink
    assert image.getpixel((0, 0)) == 255  # background
    assert len(uri) < 600


def test_digit_png_accepts_a_flat_row_of_64_values_like_sklearn_digits() -> None:
    flat = np.arange(64) % 17

    assert _decode(render_digit_png(flat, scale=1)).size == (8, 8)
    assert render_digit_png(flat.reshape(8, 8)) == render_digit_png(list(flat))


def test_digit_png_refuses_a_non_square_image() -> None:
    with pytest.raises(ValueError, match="square"):
        render_digit_png(list(range(10)))


def test_tabular_html_is_an_escaped_feature_value_table() -> None:
    html = tabular_html(
        {
            "age": 41,
            "income<€>": 1234.5678,
            "note": "a & b",
            "missing": None,
            "nan": float("nan"),
            "count": np.int64(3),
        }
    )

    assert html.startswith("<table") and html.endswith("</table>")
    assert html.count("<tr>") == 6
    assert "income&lt;€&gt;" in html and "a &amp; b" in html
    assert ">1235<" in html and ">41<" in html and ">3<" in html
    ET.fromstring(html)  # well-formed
