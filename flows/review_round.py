"""One round of human review in Label Studio, called by the labeling flow when
``review.mode: labelstudio``. It wires the review stages and nothing else.

    route ─► send_to_review (idempotent import) ─► [bot labelers] ─► collect_reviews
          ─► one more annotator where people disagree (active learning)
          ─► one more where people's check of a machine label is not settled (adjudication),
             or where the label people give is not yet as sure as the target
          ─► wait for people
          ─► apply_reviews (consensus into the rows)

After the probes and the machine-label gate, ``earlier_answers`` folds in the answers people gave
in the project to items no round of this run sent them (an earlier run did).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import deployment, flow_run
from pydantic import Field

from labelgate.errors import preview
from labelgate.spec import LabelingJobSpec
from labelgate.store import LabelStore
from tasks.gate import labels_needed
from tasks.ingest import Dataset
from tasks.review import (
    ReviewPending,
    Reviews,
    adjudication,
    apply_reviews,
    ask_for_more_answers,
    changed_since_asked,
    checked_machine_labels,
    collect_reviews,
    connect_review_webhook,
    extra_annotations,
    label_certainty,
    most_answers,
    retire_after_acceptance,
    send_to_review,
    simulate_labelers,
    waiting_on_nobody,
)
from tasks.route import route_items
from tasks.wait_progress import move_wait_progress, start_wait_progress

#: How often one run may suspend at one wait (resumed by the sync, the webhook or a person,
#: and still short of answers) before it gives up.
MAX_SUSPENDS = 50


class ReviewDecision(RunInput):
    """What a person can answer from the Prefect UI while the job waits for labelers (the run's
    *Resume* form, with :func:`resume_form_text` above it)."""

    accept_as_is: bool = Field(
        default=False,
        description="On: publish what people have answered so far. Off: check Label Studio again now "
        "and keep waiting for the rest.",
    )


def resume_form_text(where: str) -> str:
    """The markdown the Prefect UI shows above the *Resume* form of a waiting run."""
    return (
        f"**labelgate is waiting for people.** When the run suspended: {where}.\n\n"
        "It resumes on its own once every routed item has its answers (Label Studio's webhook, or "
        "the `review-sync` schedule). To publish now instead, turn on *Accept as is* and submit: "
        "the answers given so far count (those given after the run suspended too), the items "
        "nobody answered keep the status they had, and Label Studio stops handing out their tasks."
    )


def review_round(
    spec: LabelingJobSpec,
    dataset: Dataset,
    rows: pd.DataFrame,
    pred_probs: np.ndarray,
    model_version: str,
    *,
    demoted: frozenset[str] = frozenset(),
    probe: dict[str, int] | None = None,
    probe_demoted: frozenset[str] = frozenset(),
) -> tuple[pd.DataFrame, dict, Reviews]:
    """Send, wait, fold in. Returns the reviewed rows, a summary for the lineage, the reviews.

    demoted, probe_demoted: machine labels the machine-label gate or a probe sent back; they join
    the items routed by the first round (a second round: the first round's tasks and answers are
    reused, not repeated). probe: class -> probe size (``tasks/probe.py``)."""
    gold = dataset.gold_answers  # read and checked at ingest
    routed = task(route_items, name="route", cache_policy=NO_CACHE)(
        rows,
        audit_share=spec.review.audit_share,
        seed=spec.autolabel.seed,
        gold_ids=set(gold),
        demoted_ids=demoted,
        minimum_audit=labels_needed(spec.autolabel.target_accuracy),
        probe=probe,
        probe_demoted_ids=probe_demoted,
        learned_ids=dataset.learned_ids,
    )
    second = len(demoted) + len(probe_demoted)
    key = f"review-gate{second}" if second else "review"
    reviews = answers_from_people(spec, dataset, rows, routed, pred_probs, model_version, wait_key=key)
    reviewed, summary = apply_reviews(rows, reviews, gold=gold)
    return reviewed, summary, reviews


def answers_from_people(
    spec: LabelingJobSpec,
    dataset: Dataset,
    rows: pd.DataFrame,
    routed: pd.DataFrame,
    pred_probs: np.ndarray,
    model_version: str,
    *,
    wait_key: str,
) -> Reviews:
    """Import the routed items (idempotent), let bots answer when the spec says so, ask one more
    person where the answers call for it, and wait until every routed item has its answers."""
    gold = dataset.gold_answers
    project = send_to_review(spec, dataset, rows, routed, model_version)
    ids = list(dataset.ids)
    routed_ids = routed["item_id"].tolist()
    k = spec.review.annotators_per_item
    if spec.review.simulate:
        simulate_labelers(spec, dataset, project, routed_ids, answers_per_item=k)
    reviews = collect_reviews(spec, project, routed, pred_probs, ids, gold=gold)
    if reviews.complete and k >= 2:
        required = extra_annotations(reviews, spec, pred_probs, ids)
        reviews = more_answers(spec, dataset, reviews, required, pred_probs, gold=gold)
    checked = checked_machine_labels(rows, routed)
    for _ in range(most_answers(spec)):  # one more person per unsettled check or unsure label
        if not reviews.complete:
            break
        checks, labels = adjudication(reviews, checked, spec), label_certainty(reviews, spec, pred_probs, ids)
        required = {item: max(checks[item], labels[item]) for item in reviews.required}
        if required == reviews.required:
            break
        reviews = more_answers(spec, dataset, reviews, required, pred_probs, gold=gold)
    accepted_as_is = False
    if not reviews.complete:
        wait_for_people(reviews, key=wait_key, label_set=spec.output.label_set)  # returns only when
        accepted_as_is = True  # a person accepts the batch as it stands
    if deployment.id:  # it waits for nobody now
        done_waiting(reviews, key=wait_key, accepted_as_is=accepted_as_is)
    if accepted_as_is:  # the batch's unfinished tasks are no longer handed out
        retire_after_acceptance(project, routed_ids)
    return reviews


def done_waiting(reviews: Reviews, *, key: str, accepted_as_is: bool) -> None:
    """A deployed run's wait ``key`` is over: its progress bar gets the last figure and the
    run's record of the items it waits for goes. A resumed run replays its earlier waits first
    (they return at once): the record and the bar of a later wait (``wait`` in the record) are
    left to that wait."""
    store, run_id = LabelStore(), flow_run.get_id()
    bar, wait = store.progress_bar(run_id)
    if wait not in (None, key):
        return
    how = "accepted as it stood" if accepted_as_is else "all answered"
    move_wait_progress(
        bar,
        reviews.done,
        len(reviews.routed),
        f"**{reviews.done} of {len(reviews.routed)} routed items answered**, done waiting "
        f"({how}); the run went on. In Label Studio: {reviews.project_url}",
        log=get_run_logger(),
    )
    store.forget_awaited(run_id)


def more_answers(
    spec: LabelingJobSpec,
    dataset: Dataset,
    reviews: Reviews,
    required: dict[str, int],
    pred_probs: np.ndarray,
    *,
    gold: dict[str, str],
) -> Reviews:
    """Ask Label Studio for the answers ``required`` adds (bot labelers give them at once), then
    collect again with the new counts."""
    more = {item: n for item, n in required.items() if n > reviews.required.get(item, 1)}
    if more:
        ask_for_more_answers(reviews.project_id, more)
        if spec.review.simulate:
            for n in sorted(set(more.values())):
                items = [item for item, m in more.items() if m == n]
                simulate_labelers(spec, dataset, reviews.project_id, items, answers_per_item=n)
    return collect_reviews(
        spec, reviews.project_id, reviews.routed, pred_probs, list(dataset.ids), required, gold=gold
    )


def wait_for_people(reviews: Reviews, *, label_set: str, key: str = "review") -> None:
    """Deployed runs suspend (no process is held) until the webhook receiver or the review-sync
    flow resumes them, or a person answers the form in the Prefect UI; the run's page shows a
    progress bar of the ``label_set``'s batch (``tasks/wait_progress.py``), which each review-sync
    moves. A run started outside a deployment cannot be resumed, so it stops here and publishes
    nothing; rerunning the job continues (finished stages are cached, no task is imported twice)."""
    where = (
        f"{reviews.done} of {len(reviews.routed)} routed items have their answers; "
        f"label them at {reviews.project_url}"
    )
    stuck, people = waiting_on_nobody(reviews)
    if stuck:
        where += (
            f". {len(stuck)} of them ({preview(stuck)}) wait for a person who has not answered them "
            f"yet: all {people} who have answered so far did, and Label Studio never hands anyone "
            "the same task twice. Ask more people, or set review.max_annotators_per_item (1 for a "
            "lone labeler), or accept the batch as it stands (accept_as_is in the Prefect UI)"
        )
        get_run_logger().warning("waiting for people: %s", where)
    if deployment.id:
        connect_review_webhook(reviews.project_id)  # so Label Studio's events can resume it
        store, run_id = LabelStore(), flow_run.get_id()
        # a bar on the run's page, which each review-sync moves (tasks/wait_progress.py)
        bar, wait = store.progress_bar(run_id)
        if wait in (None, key):  # a run that suspends again at this wait keeps its bar
            bar = start_wait_progress(
                bar, label_set, reviews.done, len(reviews.routed), reviews.project_url, log=get_run_logger()
            )
        else:  # a resumed run replays an earlier wait (it returns at once): the bar is a later
            bar = None  # wait's, and the record keeps it (None keeps the one recorded)
        # the sync and the webhook check these tasks only (flows/review_sync.py)
        store.save_awaited(
            run_id,
            reviews.routed["item_id"].astype(str),
            project=reviews.project_id,
            progress_artifact=bar,
            wait=key,
        )
        # A resumed run starts again from the top and syncs the answers (only those new since the
        # last sync are read from Label Studio, tasks/annotation_sync.py); if it is still not
        # complete (its new answers call for one more person), it suspends again, under the next
        # key. The keys of one wait are numbered only, never tied to the answers so far: a key
        # already answered returns its stored input at once, so the rerun replays every decision
        # made at this wait, and a person's accept_as_is holds even when people answered more
        # after the run suspended (with the answer count in the key it suspended again).
        if not stuck:  # (else said above) the run's log says what it waits for, as the form does
            get_run_logger().info("waiting for people: %s", where)
        form = ReviewDecision.with_initial_data(description=resume_form_text(where))
        for attempt in range(MAX_SUSPENDS):
            decision = suspend_flow_run(wait_for_input=form, key=f"{key}-{attempt}", timeout=None)
            if decision.accept_as_is:
                return
    raise ReviewPending(
        f"waiting for people: {where}. Nothing was published; run the same job again when they are done."
    )


def earlier_answers(
    spec: LabelingJobSpec,
    dataset: Dataset,
    screened: pd.DataFrame,
    rows: pd.DataFrame,
    reviews: Reviews,
    pred_probs: np.ndarray,
) -> tuple[pd.DataFrame, Reviews, int]:
    """No answer is dropped: items of ``screened`` (the review round's rows) that people answered
    in the job's project though no round of this run sent them (an earlier run routed them,
    before people's answers changed the model, or the spec changed) take people's consensus label
    in ``rows`` too, with their answers as they are (route ``answered_earlier``; nothing more is
    asked). Run after the probes and the machine-label gate, which decide on the machine labels as
    this run routed them. Items the data file changed since their task was made are left out,
    with a warning: their answers are about the old content (they stay in Label Studio and in
    the mirror). Returns the rows, the reviews with those items, and how many joined."""

    def collect(eligible: pd.DataFrame) -> Reviews:
        return collect_reviews(
            spec,
            reviews.project_id,
            reviews.routed,
            pred_probs,
            list(dataset.ids),
            reviews.required,
            gold=dataset.gold_answers,
            earlier_from=eligible,
        )

    unrouted = set(screened["item_id"]) - set(reviews.routed["item_id"])
    if not unrouted & reviews.answered_in_project:  # nothing to fold in: no second collect
        return rows, reviews, 0
    everything = collect(screened)
    earlier = everything.routed[everything.routed["route"] == "answered_earlier"]
    changed = changed_since_asked(reviews.project_id, dataset, earlier["item_id"].tolist())
    if changed:
        get_run_logger().warning(
            "%d item(s) people answered in an earlier run changed in the data file since; their "
            "answers are about the old content and are not used: %s",
            len(changed),
            preview(changed),
        )
        everything = collect(screened[~screened["item_id"].isin(changed)])
        earlier = everything.routed[everything.routed["route"] == "answered_earlier"]
    if earlier.empty:
        return rows, reviews, 0
    folded, _ = apply_reviews(rows, replace(everything, routed=earlier), gold=dataset.gold_answers)
    return folded, everything, len(earlier)
