"""The labeling job, as one Prefect flow. It wires the stages and nothing else.

    spec ─► rights ─► ingest ─► screen ─► autolabel ─► audit ─► drift ─► gate ─► [probe] ─► quarantine
            [learning rounds: while the thresholds accept too little, people label a batch
             (flows/learning_round.py) and autolabel ─► gate run again on their labels]
         ─► [review round ─► probes verified ─► machine-label gate ─► (second round for demoted labels)
             ─► answers people gave earlier to items this run did not send]
         ─► rights ─► publish ─► report

The review round (``flows/review_round.py``) runs when ``review.mode: labelstudio``; without it
the machine-label gate reports the machine labels unverified. With it, a class whose threshold no
evidence certifies is probed (``tasks/probe.py``): its most confident machine labels are accepted
provisionally, people check a sample of them, and only those the sample certifies stay accepted.

Each stage lives in ``tasks/<stage>.py``; the checks behind screen, drift and rights are pure
functions in ``validators/``. A gate stops the job with an error (and nothing is published) on a
``block`` screening finding, a rights problem, or machine labels under the target when
``validation.low_machine_accuracy: stop``. Where the data goes: ``publish`` writes the label set
to the store (``labelgate.store``, a Delta table per label set), ``report`` writes
``runs/<label_set>/v<version>/report.md`` and a Prefect artifact.
"""

from __future__ import annotations

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import ValidationError

from flows.learning_round import learning_round
from flows.review_round import earlier_answers, review_round
from labelgate import run_logs
from labelgate.spec import LabelingJobSpec
from tasks import report_figure
from tasks.audit import audit
from tasks.autolabel import autolabel
from tasks.drift import check_drift, review_spec
from tasks.gate import gate, machine_label_gate, threshold_curves, tuning_evidence
from tasks.ingest import ingest
from tasks.learning import accepted_share
from tasks.probe import check_probes, probe, probe_sizes
from tasks.publish import Published, build_lineage, check_publish_rights, publish
from tasks.quarantine import quarantine
from tasks.report import report
from tasks.screen import apply_screening, screen, screening_summary


def run_name() -> str:
    """``LabelingJobSpec.run_name`` of the run's spec (a deployed run's parameters are JSON); a
    spec that does not validate fails the run right after, under Prefect's name for it."""
    spec = flow_run.parameters.get("spec")
    try:
        return (spec if isinstance(spec, LabelingJobSpec) else LabelingJobSpec.model_validate(spec)).run_name
    except ValidationError:
        return flow_run.name


@flow(name="labeling-job", flow_run_name=run_name, log_prints=False, validate_parameters=True)
def labeling_job(spec: LabelingJobSpec) -> Published:
    """Label a dataset: screen, autolabel, audit every label, quarantine suspects, gate, publish."""
    run_logs.send_to_prefect()  # labelgate's own log lines on the run's page
    report_figure.warm_up()  # the report's drawing process starts on the other core
    check_publish_rights(spec)  # fail fast; checked again on the day of the publish
    dataset = ingest(spec)
    findings = screen(spec, dataset)
    learning, rounds_run = spec.review.learning, 0
    for round_ in range(learning.rounds + 1):  # learning rounds (tasks/learning.py); none by default
        machine = autolabel(spec, dataset)
        audited = audit(spec, dataset, machine)
        drift = check_drift(spec, dataset, audited.pred_probs)
        thresholds = gate(spec, dataset, audited.pred_probs, allow_pooled=drift["allow_pooled_thresholds"])
        accepted = accepted_share(dataset, audited.pred_probs, thresholds)
        if round_ == learning.rounds or accepted >= learning.stop_share:
            break
        decided = quarantine(spec, dataset, audited.pred_probs, audited.table, thresholds)
        taught = learning_round(
            spec, dataset, decided, audited.pred_probs, thresholds, machine.model_version, round_=round_
        )
        if taught.n_learned == dataset.n_learned:  # nothing left under the thresholds, or no answer
            break
        dataset, rounds_run = taught, round_ + 1
    thresholds = probe(spec, dataset, audited.pred_probs, thresholds)
    decided = quarantine(spec, dataset, audited.pred_probs, audited.table, thresholds)
    rows, kept_from_people = task(apply_screening, name="apply_screening", cache_policy=NO_CACHE)(
        decided, findings
    )
    if spec.review.mode == "labelstudio":
        evidence = tuning_evidence(dataset, audited.pred_probs) if drift["allow_pooled_thresholds"] else None
        rows, review, people, machine_labels, thresholds = reviewed_by_people(
            review_spec(spec, drift),
            dataset,
            decided,
            rows,
            kept_from_people,
            audited,
            machine,
            evidence,
            thresholds,
        )
        review["learning"] = {"rounds": rounds_run, "labeled": dataset.n_learned}
    else:
        rows = pd.concat([rows, kept_from_people], ignore_index=True)
        review, people = None, None
        rows, machine_labels = machine_label_gate(spec, decided, rows, None)
    rights = check_publish_rights(spec)
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
        validation={
            "screening": screening_summary(findings, spec.validation.selected_checks()),
            "drift": drift,
            "machine_labels": machine_labels,
            "rights": rights,
        },
    )
    figure = report_figure.figure_data(
        rows,
        classes=spec.label_schema.classes,
        curves=threshold_curves(dataset, audited.pred_probs),
        target=spec.autolabel.target_accuracy,
        thresholds=thresholds,
        annotators=(review or {}).get("annotators"),
    )
    drawing = report_figure.draw_in_background(figure)
    published = publish(spec, rows, lineage, people)
    report(spec, rows, lineage, published, figure, drawing)
    return published


def reviewed_by_people(
    spec, dataset, decided, screened, kept_from_people, audited, machine, evidence, thresholds
):
    """The review round, then the probes (``tasks/probe.py``) and the machine-label gate on its
    audit sample (raising the threshold on it and the thresholds' ``evidence`` together). When
    the gate finds the machine labels under the target, or a probe does not certify its class's
    provisional machine labels, those go to people in a second round of the same run (same
    project, same tasks kept), and the probes and the gate run again on the answers. Returns the
    rows, the review summary, the reviews, the gate's verdict and the thresholds (probes settled)."""
    probes = probe_sizes(thresholds)
    rows, review, people = review_round(
        spec, dataset, screened, audited.pred_probs, machine.model_version, probe=probes
    )
    rows, settled, probe_demoted = check_probes(spec, decided, rows, people, thresholds)
    gated, verdict = machine_label_gate(
        spec,
        decided,
        pd.concat([rows, kept_from_people], ignore_index=True),
        people,
        evidence=evidence,
        probed=probes,
    )
    demoted = verdict.pop("demoted_ids", None)
    if not demoted and not probe_demoted:
        gated, people, earlier = earlier_answers(spec, dataset, screened, gated, people, audited.pred_probs)
        return gated, _with_earlier(review, earlier), people, _recounted(verdict, gated), settled
    rows, review, people = review_round(
        spec,
        dataset,
        screened,
        audited.pred_probs,
        machine.model_version,
        demoted=frozenset(demoted or ()),
        probe=probes,
        probe_demoted=frozenset(probe_demoted),
    )
    rows, settled, _ = check_probes(spec, decided, rows, people, thresholds)
    rows = pd.concat([rows, kept_from_people], ignore_index=True)
    rows, verdict = machine_label_gate(
        spec, decided, rows, people, sent_to_people=len(demoted or ()), evidence=evidence, probed=probes
    )
    verdict.pop("demoted_ids", None)
    rows, people, earlier = earlier_answers(spec, dataset, screened, rows, people, audited.pred_probs)
    return rows, _with_earlier(review, earlier), people, _recounted(verdict, rows), settled


def _recounted(verdict: dict, rows: pd.DataFrame) -> dict:
    """The gate's verdict with ``machine_accepted`` counted on the rows to publish: earlier
    answers folded in after the gate replace some machine labels with people's."""
    verdict["machine_accepted"] = int(((rows["source"] == "model") & (rows["status"] == "accepted")).sum())
    return verdict


def _with_earlier(review: dict, earlier: int) -> dict:
    """The review summary, counting the items whose earlier answers joined (``answered_earlier``)."""
    if earlier:
        review["routed"]["answered_earlier"] = earlier
    return review
