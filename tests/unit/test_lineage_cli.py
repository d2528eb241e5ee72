"""`labelgate labelsets lineage NAME@V` prints the chain back through the parent versions."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from labelgate.cli import app
from labelgate.store import LabelStore


def _rows(label):
    return pd.DataFrame(
        {
            "item_id": ["a", "b"],
            "label": label,
            "status": "accepted",
            "source": "model",
            "quality": 0.9,
            "confidence": 0.9,
            "given_label": None,
            "predicted_label": label,
            "reason": "r",
        }
    )


def test_lineage_prints_sources_rights_models_thresholds_gates_annotators_and_parents():
    store = LabelStore()
    store.publish("pets", _rows("cat"), lineage={"run_key": "a", "job": "first-job", "model_version": "m1"})
    second = {
        "run_key": "b",
        "job": "second-job",
        "data_source": "s3://pets.csv",
        "model_version": "m2",
        "models": {"text": "tfidf+sgd"},
        "target_accuracy": 0.95,
        "thresholds": {
            "cat": {"threshold": 0.93, "basis": "class"},
            "dog": {"threshold": 0.97, "basis": "probe", "probe_checked": 150, "probe_correct": 149},
        },
        "threshold_evidence": {
            "given_labels": 40,
            "gold_answers": 5,
            "learned_labels": 12,
            "used": 47,
            "machine_made_left_out": 10,
            "label_source_column": "source",
        },
        "rights_of_sources": [
            {"license": "CC-BY-4.0", "source": "shelter photos", "allowed_uses": ["training"]},
            {
                "license": "CC0-1.0",
                "source": "vet notes",
                "allowed_uses": ["training"],
                "expires": "2030-01-01",
            },
        ],
        "machine_labels": {"status": "unverified", "why": "no person checked a sample"},
        "screening": [{"check": "personal_data", "found": 2, "action": "quarantine"}],
        "drift": {"reasons": ["class distribution (chi-square p=1e-05 < 0.01)"]},
        "review": {
            "annotators": [{"annotator": "ann@x", "answers": 7, "gold_accuracy": 1.0}],
            "learning": {"rounds": 2, "labeled": 12},
        },
    }
    store.publish("pets", _rows("dog"), lineage=second)

    result = CliRunner().invoke(app, ["labelsets", "lineage", "pets@1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "pets@1",
        "second-job",
        "shelter photos · CC-BY-4.0",
        "vet notes · CC0-1.0 · uses training · expires 2030-01-01",
        "m2 (text)",
        "cat 0.930 (class)",
        "dog 0.970 (probe: 149 of 150 probed right)",
        "evidence:    30 of 40 given labels (10 machine-made, per column 'source', left out), "
        "12 labels people gave in learning rounds, and 5 gold answers",
        "learning:    2 round(s), 12 items labeled by people before the rest was routed",
        "machine labels: unverified",
        "personal_data: 2 found, quarantine",
        "class distribution",
        "ann@x (7 answers",
        "parent:      pets@0",
        "pets@0",
        "first-job",
        "parent:      none",
    ):
        assert text in out, text
    assert out.index("pets@1") < out.index("first-job")

    raw = CliRunner().invoke(app, ["labelsets", "lineage", "pets@0", "--json"])
    assert json.loads(raw.output)["job"] == "first-job"


def test_lineage_of_a_missing_version_fails_clearly():
    LabelStore().publish("pets", _rows("cat"), lineage={"run_key": "a"})
    result = CliRunner().invoke(app, ["labelsets", "lineage", "pets@4"])
    assert result.exit_code == 1 and "no version 4" in result.output
