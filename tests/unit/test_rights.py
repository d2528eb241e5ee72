"""Data rights: what blocks a publish, and the message that says why."""

from __future__ import annotations

import copy
from datetime import date

import pytest

from labelgate.errors import RightsError
from labelgate.spec import parse_spec
from tests.unit.test_spec import BASE
from validators.rights import check_rights, normalise_licence, rights_problems

TODAY = date(2026, 11, 30)


def _source(**over):
    return {
        "license": "CC-BY-4.0",
        "source": "s3://bucket/reviews",
        "allowed_uses": ["training", "evaluation"],
        "expires": None,
        **over,
    }


def test_open_licence_that_allows_training_passes():
    assert rights_problems([_source()], on=TODAY) == []
    check_rights([_source(license="CC-BY-NC-4.0")], on=TODAY)  # NC alone does not block


@pytest.mark.parametrize(
    "licence", ["no-ai-training", "All Rights Reserved", "PROPRIETARY", "no_ai_training"]
)
def test_licence_that_forbids_training_blocks(licence):
    problems = rights_problems([_source(license=licence)], on=TODAY)
    assert len(problems) == 1 and "forbids training" in problems[0]


def test_allowed_uses_without_training_blocks():
    problems = rights_problems([_source(allowed_uses=["evaluation"])], on=TODAY)
    assert problems == [
        "source 1 ('s3://bucket/reviews', licence 'CC-BY-4.0'): allowed_uses ['evaluation'] "
        "do not include 'training'"
    ]


def test_expired_rights_block_and_the_last_day_is_still_valid():
    assert rights_problems([_source(expires=TODAY)], on=TODAY) == []
    problems = rights_problems([_source(expires="2026-11-29")], on=TODAY)
    assert len(problems) == 1 and "expired on 2026-11-29" in problems[0]


def test_every_source_counts_and_the_error_names_the_bad_one():
    good, bad = _source(source="crm export"), _source(source="scraped forum", license="no-ai-training")
    with pytest.raises(RightsError) as info:
        check_rights([good, bad], on=TODAY)
    message = str(info.value)
    assert "source 2 ('scraped forum'" in message and "crm export" not in message
    assert "nothing is published" in message


def test_no_rights_at_all_blocks():
    assert "no rights given" in rights_problems([], on=TODAY)[0]


def test_normalise_licence():
    assert normalise_licence(" All_Rights  Reserved ") == "all-rights-reserved"


def test_spec_keeps_the_single_rights_block_and_adds_more_sources():
    spec = parse_spec(BASE)
    assert [r.source for r in spec.all_rights] == ["where the data came from"]
    data = copy.deepcopy(BASE)
    data["sources"] = [_source(source="second source", license="no-ai-training")]
    spec = parse_spec(data)
    assert [r.license for r in spec.all_rights] == ["CC-BY-4.0", "no-ai-training"]
    with pytest.raises(RightsError, match="second source"):
        check_rights(spec.all_rights, on=TODAY)
