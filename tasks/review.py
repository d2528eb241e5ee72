"""review: people in Label Studio check what the machine could not settle.

The routed items (``tasks/route.py``) become Label Studio tasks with the model's pre-annotation
and the reason they were sent. Answers are folded into consensus labels (``tasks/consensus.py``)
and written back into the label-set rows: a reviewed item's label comes from people
(``source: human``), a gold item's from its known answer. The audit sample measures how accurate
the auto-accepted machine labels really are; re-reviewed quarantined items tell how precise the
audit's flags were. Label Studio is reached only through ``labelgate.labelstudio.LabelStudio``,
which the tasks receive from ``labelstudio_client`` so tests can pass another.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import deployment, flow_run

from labelgate.errors import DataError, LabelgateError, ServiceError, StoreError, preview
from labelgate.labelconfig import label_config, render_digit_png, tabular_html
from labelgate.progress import stage_finished
from labelgate.spec import LabelingJobSpec
from labelgate.store import LabelStore
from tasks.annotation_sync import restore_unmoved, set_aside_in_mirror, sync_annotations
from tasks.consensus import (
    annotator_scores,
    consensus_labels,
    needs_another_annotator,
    plurality_answers,
    settling_margin,
    unsettled_checks,
    unsure_labels,
)
from tasks.gate import accuracy_lower_bound
from tasks.ingest import Dataset, read_answers
from tasks.route import CHECK_ROUTES, LABEL_ROUTES, with_earlier_answers


class ReviewPending(LabelgateError):
    """People have not finished the review yet; nothing was published."""


@dataclass(frozen=True)
class Reviews:
    """Answers collected so far for one job's routed items."""

    project_id: int
    project_url: str
    routed: pd.DataFrame
    annotations: pd.DataFrame
    consensus: pd.DataFrame
    annotators: pd.DataFrame
    required: dict[str, int] = field(default_factory=dict)
    answered_in_project: frozenset[str] = frozenset()
    """Items with a usable answer anywhere in the project, routed or not."""

    @property
    def answered(self) -> pd.Series:
        counts = self.annotations.groupby("item_id").size() if len(self.annotations) else pd.Series()
        return self.routed["item_id"].map(counts).fillna(0).astype(int)

    @property
    def short(self) -> pd.Series:
        """(routed,) bool: items with fewer answers than they need."""
        return self.answered < self.routed["item_id"].map(self.required).fillna(1).astype(int)

    @property
    def done(self) -> int:
        return int((~self.short).sum())

    @property
    def complete(self) -> bool:
        return self.done == len(self.routed)


# -- pure -----------------------------------------------------------------------------------


def project_title(spec: LabelingJobSpec) -> str:
    """One project per label set (Label Studio titles are at most 50 characters)."""
    return f"labelgate {spec.output.label_set}"[:50]


def task_frame(
    dataset: Dataset,
    rows: pd.DataFrame,
    routed: pd.DataFrame,
    *,
    display: str,
    feature_names: list[str],
    model_version: str,
) -> pd.DataFrame:
    """The Label Studio import frame for the routed items (see ``LabelStudio.import_items``)."""
    position = {item: i for i, item in enumerate(dataset.ids)}
    by_id = rows.set_index("item_id")
    data, hashes = [], []
    for item in routed["item_id"]:
        x = dataset.X[position[item]]
        hashes.append(item_content_hash(x))
        if dataset.kind == "text":
            data.append({"text": str(x)})
        elif display == "digit_image":
            data.append({"image": render_digit_png(np.asarray(x, dtype=float))})
        else:
            data.append({"html": tabular_html(dict(zip(feature_names, x, strict=True)))})
    return pd.DataFrame(
        {
            "item_id": routed["item_id"].to_numpy(),
            "data": data,
            "route_reason": routed["route_reason"].to_numpy(),
            "prediction": by_id.loc[routed["item_id"], "predicted_label"].to_numpy(),
            "prediction_score": by_id.loc[routed["item_id"], "confidence"].astype(float).to_numpy(),
            "model_version": model_version,
            "content_hash": hashes,
        }
    )


def item_content_hash(x: Any) -> str:
    """sha256 (first 16 hex) of an item's raw content (a text, or a row of feature values): the
    task keeps it, so a later run sees when the data file changed an item people were asked
    about (``LabelStudio.changed_items``). Raw, not as rendered, so that a change of rendering
    (an image library's PNG bytes) changes nothing."""
    raw = x if isinstance(x, str) else json.dumps([str(v) for v in np.asarray(x, dtype=object).ravel()])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry a Label Studio step, except on bad input (a ``DataError``
    would only repeat)."""
    try:
        state.result(raise_on_failure=True)
    except DataError:
        return False
    except Exception:  # any other failure may be transient
        return True
    return True


def apply_reviews(rows: pd.DataFrame, reviews: Reviews, *, gold: dict[str, str]) -> tuple[pd.DataFrame, dict]:
    """Fold people's consensus into the rows; return the new rows and a review summary.

    - gold items keep their known answer (``source: gold``);
    - other reviewed items take the consensus label (``source: human``, status ``accepted``);
      where CROWDLAB's label is one no reviewer gave (it weighed the model over every answer),
      the reason says so and ``labels_no_reviewer_gave`` counts it;
    - items nobody answered usably keep their status and reason.
    The summary measures the machine labels on the audit sample (95% lower bound) and how many
    quarantine flags people confirmed, both against people's own answers
    (:func:`tasks.consensus.plurality_answers`), not the consensus, which has the model in it: a
    machine label (or a flagged given label) counts as right when it is among the labels people
    gave most often.
    """
    rows = rows.copy().set_index("item_id", drop=False)
    consensus = reviews.consensus.set_index("item_id")
    route = reviews.routed.set_index("item_id")["route"]
    reasons = reviews.routed.set_index("item_id")["route_reason"]
    summary: dict[str, Any] = {"routed": route.value_counts().to_dict(), "project_id": reviews.project_id}
    sample_hits = sample_n = confirmed = overturned = model_sided = 0
    said = plurality_answers(reviews.annotations)  # people alone, no model: what the audit scores
    for item, r in route.items():
        answer = consensus.at[item, "label"] if item in consensus.index else None
        if item in gold:
            rows.loc[item, ["label", "status", "source"]] = [gold[item], "accepted", "gold"]
            rows.loc[item, "reason"] = "gold item: known answer"
            continue
        if answer is None or (isinstance(answer, float) and math.isnan(answer)):
            continue
        before = rows.at[item, "label"]
        if r == "audit_sample":
            sample_n += 1
            sample_hits += int(before in said.get(item, ()))
        if r == "quarantined":
            if rows.at[item, "given_label"] in said.get(item, ()):
                overturned += 1
            else:
                confirmed += 1
        c = consensus.loc[item]
        rows.loc[item, ["label", "status", "source", "quality"]] = [answer, "accepted", "human", c["quality"]]
        rows.loc[item, "reason"] = (
            f"{int(c['n_annotations'])} reviewer(s), {c['method']}: {answer!r} "
            f"(agreement {c['agreement']:.2f}); sent because: {reasons[item]}"
        )
        if c["agreement"] == 0:  # CROWDLAB weighed the model over every answer
            model_sided += 1
            rows.loc[item, "reason"] += (
                f"; no reviewer gave this label: CROWDLAB weighed the model's probabilities over "
                f"people's answers ({', '.join(map(repr, sorted(said.get(item, ()))))})"
            )
    summary["machine_accuracy"] = {
        "checked": sample_n,
        "correct": sample_hits,
        "estimate": sample_hits / sample_n if sample_n else None,
        "lower_95": float(accuracy_lower_bound(sample_hits, sample_n)) if sample_n else None,
    }
    summary["labels_no_reviewer_gave"] = model_sided
    summary["quarantine_resolution"] = {
        "confirmed": confirmed,
        "overturned": overturned,
        "flag_precision": confirmed / (confirmed + overturned) if confirmed + overturned else None,
    }
    summary["annotators"] = reviews.annotators.to_dict(orient="records")
    return rows.reset_index(drop=True), summary


def human_events(reviews: Reviews, *, label_set: str, job: str, key: str) -> pd.DataFrame:
    """One label event per usable annotation (``source: human``, actor = annotator).

    An event is one observation: this annotation, as edited at ``updated_at``, in this project.
    Its id does not depend on the run (``key`` only records which run saw it first), so a job run
    again under a changed spec or code does not log people's same answers a second time; an edit
    is a new observation."""
    usable = reviews.annotations[reviews.annotations["status"] == "ok"]
    ids = [
        hashlib.sha256(f"{reviews.project_url}|{a}|{u}".encode()).hexdigest()[:24]
        for a, u in zip(usable["annotation_id"], usable["updated_at"], strict=True)
    ]
    return pd.DataFrame(
        {
            "event_id": ids,
            "label_set": label_set,
            "item_id": usable["item_id"].astype(str).to_numpy(),
            "label": usable["label"].to_numpy(),
            "source": "human",
            "actor": usable["annotator"].astype(str).to_numpy(),
            "confidence": np.nan,
            "job": job,
            "run_key": key,
            "observed_at": pd.to_datetime(usable["updated_at"], utc=True).to_numpy(),
        }
    )


# -- Prefect tasks --------------------------------------------------------------------------


def labelstudio_client():
    """The Label Studio adapter from settings (tests may monkeypatch this factory)."""
    from labelgate.labelstudio import LabelStudio

    return LabelStudio.from_settings()


@task(
    name="send_to_review",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_unless_bad_input,
    on_completion=[stage_finished],
)
def send_to_review(
    spec: LabelingJobSpec, dataset: Dataset, rows: pd.DataFrame, routed: pd.DataFrame, model_version: str
) -> int:
    """Create or reuse the job's project and import the routed items (idempotent).

    In a project an earlier run used, the tasks nobody answered whose items this run does not
    route, and no waiting run awaits, are retired first (``retire_unrouted``), so that labelers
    are not handed work no run needs; the routed items' tasks are offered again if an earlier
    run retired them or they were made when the spec asked fewer people."""
    kind = (
        "text" if dataset.kind == "text" else ("image" if spec.review.display == "digit_image" else "tabular")
    )
    with labelstudio_client() as client:
        project = client.ensure_project(
            title=project_title(spec),
            label_config=label_config(
                spec.label_schema.classes, kind=kind, instructions=spec.label_schema.instructions
            ),
            instructions=spec.label_schema.instructions,
            annotators_per_task=spec.review.annotators_per_item,
        )
        frame = task_frame(
            dataset,
            rows,
            routed,
            display=spec.review.display,
            feature_names=list(spec.dataset.feature_columns or []),
            model_version=model_version,
        )
        routed_ids = routed["item_id"].astype(str).tolist()
        reused = client.count_tasks(project) > 0
        if reused:
            retire_unrouted(client, project, routed_ids)
        if spec.review.changed_items == "ask_again":
            ask_again(client, project, frame)
        created = client.import_items(project, frame)
        if reused:
            k = spec.review.annotators_per_item
            client.ask_for_more_answers(project, dict.fromkeys(routed_ids, k), only_raise=True)
    get_run_logger().info("project %s: %d routed items, %d new tasks", project, len(routed), created)
    return project


def retire_unrouted(client: Any, project: int, routed_ids: list[str]) -> list[str]:
    """Retire (``LabelStudio.retire_tasks``) the project's unanswered tasks whose items this run
    does not route and no run waits for (``LabelStore.awaited_by_any_run``). A deployed run
    records what it routes first, so that a run of the same job starting meanwhile keeps them."""
    store = LabelStore()
    if deployment.id:
        store.save_awaited(flow_run.get_id(), routed_ids, project=project)
    retired = client.retire_tasks(project, keep=set(routed_ids) | store.awaited_by_any_run(project))
    if retired:
        get_run_logger().info(
            "project %s: %d unanswered task(s) no run asks about any more are no longer offered (%s)",
            project,
            len(retired),
            preview(retired),
        )
    return retired


@task(name="retire_after_acceptance", cache_policy=NO_CACHE)
def retire_after_acceptance(project: int, batch: list[str]) -> list[str]:
    """A batch accepted as it stands (``accept_as_is``) asks nothing more: the unfinished tasks of
    its items (``batch``) are retired (``LabelStudio.retire_tasks``, those with some answers
    too), so labelers are no longer handed them; tasks another waiting run awaits stay. Call it
    after this run's awaited record is forgotten. A later run that routes one of these items
    offers its task again. Label Studio or the store failing here is a warning, not a failure:
    the person's decision to publish stands."""
    try:
        with labelstudio_client() as client:
            awaited = LabelStore().awaited_by_any_run(project)
            retired = client.retire_tasks(project, keep=awaited, begun=True, only=batch)
    except (ServiceError, StoreError) as exc:
        get_run_logger().warning(
            "project %s: the batch was accepted as it stands, but its unanswered tasks are still "
            "offered (the next run of the job retires them): %s",
            project,
            exc,
        )
        return []
    if retired:
        get_run_logger().info(
            "project %s: the batch was accepted as it stands; %d unanswered task(s) are no longer "
            "offered (%s)",
            project,
            len(retired),
            preview(retired),
        )
    return retired


def ask_again(client: Any, project: int, frame: pd.DataFrame) -> int:
    """``review.changed_items: ask_again``: the tasks of items whose content changed since their
    task was made are set aside (``LabelStudio.supersede_tasks``), their answers moved with them in
    the mirror first (``set_aside_in_mirror``), so that ``import_items`` makes new tasks. Returns
    how many. Answers a crashed run moved in the mirror only, for an item the data file has since
    changed back, come back to it first (``restore_unmoved``)."""
    store = LabelStore()
    restored = restore_unmoved(client, store, project, frame["item_id"].astype(str).tolist())
    if restored:
        get_run_logger().warning(
            "project %s: %d answer(s) a crashed run had begun to set aside belong to their item "
            "again (the data file changed it back)",
            project,
            restored,
        )
    moved = client.changed_tasks(project, frame)
    if moved:
        set_aside_in_mirror(client, store, project, moved)
        client.supersede_tasks(project, moved)
        get_run_logger().warning(
            "project %s: %d item(s) changed since people were asked (%s): their old tasks and "
            "answers are kept, set aside, and people are asked again on new tasks",
            project,
            len(moved),
            preview([m.rsplit("@", 1)[0] for m in moved.values()]),
        )
    return len(moved)


@task(name="simulate_labelers", cache_policy=NO_CACHE, on_completion=[stage_finished])
def simulate_labelers(
    spec: LabelingJobSpec, dataset: Dataset, project: int, items: list[str], *, answers_per_item: int
) -> int:
    """Bot labelers (real Label Studio users) answer ``items`` until each has k answers."""
    from labelgate.bots import BotLabeler

    sim = spec.review.simulate
    truth = read_answers(
        sim.truth_path,
        dataset,
        column="true_label",
        id_column=spec.dataset.id_column,
        what="simulation truth",
    )
    truth = {i: truth[i] for i in items if i in truth}
    done = 0
    with labelstudio_client() as client:
        for n, bot in enumerate(sim.labelers):
            labeler = BotLabeler(f"bot{n + 1}@labelgate.local", accuracy=bot.accuracy, seed=bot.seed)
            done += labeler.work(
                client, project, truth=truth, classes=spec.label_schema.classes, max_per_task=answers_per_item
            )
    return done


@task(
    name="collect_reviews",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    on_completion=[stage_finished],
)
def collect_reviews(
    spec: LabelingJobSpec,
    project: int,
    routed: pd.DataFrame,
    pred_probs: np.ndarray,
    item_ids: list[str],
    required: dict[str, int] | None = None,
    *,
    gold: dict[str, str],
    earlier_from: pd.DataFrame | None = None,
) -> Reviews:
    """Every answer for the project, folded into consensus (CROWDLAB, or majority vote without
    model probabilities) and annotator scores (against ``gold``: item_id -> the known answer, as
    read and checked by ``read_answers``).

    Incremental (``tasks.annotation_sync.sync_annotations``): only the annotations new since the
    last sync are read from Label Studio; the earlier ones come from the label store's mirror of
    the project. One row per annotation id, the latest edit wins.

    earlier_from: the round's rows; those people answered but ``routed`` does not send join it
    (``tasks.route.with_earlier_answers``), each complete with the answers it has."""
    classes = spec.label_schema.classes
    with labelstudio_client() as client:
        annotations = sync_annotations(client, LabelStore(), project, classes=classes)
        url = f"{client.url}/projects/{project}/data"
    get_run_logger().info(
        "project %s: %d answers, %d of them read from Label Studio this time (%d new or edited)",
        project,
        len(annotations),
        annotations.attrs.get("read", 0),
        annotations.attrs.get("changed", 0),
    )
    answered_in_project = frozenset(annotations.loc[annotations["status"] == "ok", "item_id"].astype(str))
    if earlier_from is not None:
        routed = with_earlier_answers(routed, annotations, earlier_from)
    annotations = annotations[annotations["item_id"].isin(set(routed["item_id"]))]
    position = {item: i for i, item in enumerate(item_ids)}
    routed_ids = routed["item_id"].tolist()
    probs = pred_probs[[position[i] for i in routed_ids]]
    usable = annotations[annotations["status"] == "ok"]
    consensus = consensus_labels(usable, routed_ids, classes, pred_probs=probs)
    scores = annotator_scores(usable, consensus, gold=gold)
    required = required or dict.fromkeys(routed_ids, spec.review.annotators_per_item)
    earlier = routed.loc[routed["route"] == "answered_earlier", "item_id"]
    if len(earlier):  # asked nothing more: complete with the answers they have
        counts = annotations.groupby("item_id").size()
        required = {**required, **{item: int(counts[item]) for item in earlier}}
    annotations = annotations.reset_index(drop=True)
    return Reviews(project, url, routed, annotations, consensus, scores, required, answered_in_project)


def extra_annotations(
    reviews: Reviews, spec: LabelingJobSpec, pred_probs: np.ndarray, item_ids: list[str]
) -> dict[str, int]:
    """Items that get one more annotator: the least certain tenth, by cleanlab's active-learning
    score, among items whose annotators disagreed. Returns the new required counts.

    Decided on each item's first k answers (:func:`first_answers`), what every item had when the
    job first asked: a rerun or a resumed run, which sees the answers given since, picks the same
    items and asks nobody again."""
    k = spec.review.annotators_per_item
    first = first_answers(reviews.annotations, k)
    usable = first[first["status"] == "ok"]
    kinds = usable.groupby("item_id")["label"].nunique()
    disagree = [item for item in reviews.routed["item_id"] if kinds.get(item, 0) > 1]
    if k < 2 or not disagree or k + 1 > most_answers(spec):
        return dict(reviews.required)
    position = {item: i for i, item in enumerate(item_ids)}
    budget = max(1, math.ceil(0.1 * len(reviews.routed)))
    chosen = needs_another_annotator(
        usable,
        disagree,
        spec.label_schema.classes,
        pred_probs[[position[i] for i in disagree]],
        budget=budget,
    )
    required = dict(reviews.required)
    for item in chosen:
        required[item] = k + 1
    return required


def first_answers(annotations: pd.DataFrame, k: int) -> pd.DataFrame:
    """Each item's first ``k`` answers, by annotation id (Label Studio numbers them as they are
    made; an edit keeps its id), skipped and unusable ones included."""
    return annotations.sort_values("annotation_id", kind="stable").groupby("item_id", sort=False).head(k)


def most_answers(spec: LabelingJobSpec) -> int:
    """The most answers one item may get: ``max_annotators_per_item``, and with bot labelers no
    more than there are bots (a bot never answers a task twice)."""
    cap = spec.review.max_annotators_per_item or spec.review.annotators_per_item + 2
    if spec.review.simulate:
        cap = min(cap, len(spec.review.simulate.labelers))
    return max(cap, spec.review.annotators_per_item)


def checked_machine_labels(rows: pd.DataFrame, routed: pd.DataFrame) -> dict[str, str]:
    """item id -> machine label, for the audit sample and the probes (the machine labels people
    check)."""
    audit = routed.loc[routed["route"].isin(CHECK_ROUTES), "item_id"]
    return rows.set_index("item_id").loc[audit, "label"].astype(str).to_dict()


def adjudication(reviews: Reviews, machine_labels: dict[str, str], spec: LabelingJobSpec) -> dict[str, int]:
    """The required answers per item once checked machine labels whose verdict is not settled
    (:func:`tasks.consensus.unsettled_checks`) get one more person each (:func:`_one_more_each`)."""
    margin = spec.review.adjudication_margin or settling_margin(
        spec.autolabel.target_accuracy, len(spec.label_schema.classes)
    )
    return _one_more_each(reviews, spec, unsettled_checks(reviews.annotations, machine_labels, margin=margin))


def label_certainty(
    reviews: Reviews, spec: LabelingJobSpec, pred_probs: np.ndarray, item_ids: list[str]
) -> dict[str, int]:
    """The required answers per item once items people label for their label (routed below the
    threshold, or demoted by the gate or a probe) whose label is not yet as sure as the target
    (:func:`tasks.consensus.unsure_labels`) get one more person each (:func:`_one_more_each`)."""
    routed = reviews.routed
    labeling = routed.loc[routed["route"].isin(LABEL_ROUTES), "item_id"]
    position = {item: i for i, item in enumerate(item_ids)}
    prior = {item: pred_probs[position[item]] for item in labeling}
    unsure = unsure_labels(
        reviews.annotations, prior, spec.label_schema.classes, target_accuracy=spec.autolabel.target_accuracy
    )
    return _one_more_each(reviews, spec, unsure)


def waiting_on_nobody(reviews: Reviews) -> tuple[list[str], int]:
    """Routed items still short of answers that every person who has answered in this round
    already answered: Label Studio never hands a person the same task twice, so they wait for
    someone new (a lone labeler waits forever). Returns those items and how many people answered."""
    people = set(reviews.annotations["annotator"].dropna()) if len(reviews.annotations) else set()
    if not people:
        return [], 0
    by_item = reviews.annotations.groupby("item_id")["annotator"].agg(lambda a: set(a.dropna()))
    short = reviews.routed.loc[reviews.short.to_numpy(), "item_id"]
    return [item for item in short if people <= by_item.get(item, set())], len(people)


def _one_more_each(reviews: Reviews, spec: LabelingJobSpec, items: list[str]) -> dict[str, int]:
    """``reviews.required`` with one more answer for each of ``items`` than it has now, up to
    :func:`most_answers`. Computed from the answers alone, so a resumed run asks for the same."""
    cap = most_answers(spec)
    answered = dict(zip(reviews.routed["item_id"], reviews.answered, strict=True))
    required = dict(reviews.required)
    for item in items:
        if answered[item] < cap:
            required[item] = max(required.get(item, 1), answered[item] + 1)
    return required


@task(name="changed_since_asked", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def changed_since_asked(project: int, dataset: Dataset, items: list[str]) -> list[str]:
    """Of ``items`` (with tasks in ``project``), those whose task was made from other content
    than the data file has now (``LabelStudio.changed_items``)."""
    if not items:
        return []
    position = {item: i for i, item in enumerate(dataset.ids)}
    frame = pd.DataFrame(
        {"item_id": items, "content_hash": [item_content_hash(dataset.X[position[i]]) for i in items]}
    )
    with labelstudio_client() as client:
        return client.changed_items(project, frame)


@task(name="ask_for_more_answers", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def ask_for_more_answers(project: int, more: dict[str, int]) -> int:
    """Label Studio offers these items' tasks again until each has its new number of answers."""
    with labelstudio_client() as client:
        changed = client.ask_for_more_answers(project, more)
    if changed:
        get_run_logger().info("project %s: %d task(s) asked for one more answer", project, changed)
    return changed


# -- webhook to the labelgate API (used by flows/review_round.py and flows/review_sync.py) ------


def review_webhook_url(api_url: str) -> str:
    """Where Label Studio posts annotation events: ``<api_url>/webhooks/labelstudio``."""
    return api_url.rstrip("/") + "/webhooks/labelstudio"


@task(name="connect_review_webhook", cache_policy=NO_CACHE)
def connect_review_webhook(project: int) -> bool:
    """Make sure ``project`` calls the labelgate webhook receiver on annotation events.

    Idempotent (``LabelStudio.add_webhook``). Needs the settings ``LABELGATE_API_URL`` and
    ``LABELGATE_WEBHOOK_SECRET``; without them, or when Label Studio refuses the URL (its SSRF
    protection refuses loopback addresses), it logs why and returns False: the review-sync
    schedule still resumes the job, so this never fails the flow.
    """
    from labelgate.settings import get_settings

    settings = get_settings()
    if not settings.api_url or settings.webhook_secret is None:
        get_run_logger().info(
            "no webhook for project %s (LABELGATE_API_URL or LABELGATE_WEBHOOK_SECRET unset); "
            "the review-sync schedule resumes the job",
            project,
        )
        return False
    try:
        with labelstudio_client() as client:
            client.add_webhook(
                project,
                review_webhook_url(settings.api_url),
                secret=settings.webhook_secret.get_secret_value(),
            )
    except LabelgateError as exc:
        get_run_logger().warning(
            "could not add the webhook to project %s, the review-sync schedule resumes the job: %s",
            project,
            exc,
        )
        return False
    return True
