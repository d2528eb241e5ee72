"""The labeling job, as one Prefect flow. It wires the stages and nothing else.

    spec ─► ingest ─► autolabel ─► audit ─► gate ─► quarantine ─► [review round] ─► publish ─► report

The review round (``flows/review_round.py``) runs when ``review.mode: labelstudio``.

Each stage lives in ``tasks/<stage>.py``. Where the data goes: ``publish`` writes the label set
to the store (``labelgate.store``, a Delta table per label set), ``report`` writes
``runs/<label_set>/v<version>/report.md`` and a Prefect artifact.
"""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from flows.review_round import review_round
from labelgate.spec import LabelingJobSpec
from tasks.audit import audit
from tasks.autolabel import autolabel
from tasks.gate import gate, threshold_curves
from tasks.ingest import ingest
from tasks.publish import Published, build_lineage, publish
from tasks.quarantine import quarantine
from tasks.report import report


@flow(name="labeling-job", log_prints=False, validate_parameters=True)
def labeling_job(spec: LabelingJobSpec) -> Published:
    """Label a dataset: autolabel, audit every label, quarantine suspects, publish a version."""
    dataset = ingest(spec)
    machine = autolabel(spec, dataset)
    audited = audit(spec, dataset, machine)
    thresholds = gate(spec, dataset, audited.pred_probs)
    rows = quarantine(spec, dataset, audited.pred_probs, audited.table, thresholds)
    review, people = None, None
    if spec.review.mode == "labelstudio":
        rows, review, people = review_round(spec, dataset, rows, audited.pred_probs, machine.model_version)
    lineage = build_lineage(
        spec,
        dataset,
        rows,
        model_version=machine.model_version,
        model_uri=machine.model_uri,
        models=machine.models,
        thresholds=thresholds,
        audit_settings=audited.settings,
        flow_run_id=flow_run.get_id(),
        review=review,
    )
    published = publish(spec, rows, lineage, people)
    report(spec, rows, lineage, published, threshold_curves(dataset, audited.pred_probs))
    return published
