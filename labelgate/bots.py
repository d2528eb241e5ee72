"""Simulated labelers: real Label Studio users whose answers follow a set accuracy.

A ``BotLabeler`` stands in for a person in the demo, the tests and the benchmarks. It is a real
user of the server (created through ``LabelStudio.ensure_user``) and works only through the
adapter's API: it lists the project's tasks, skips those it already answered, and submits one
annotation per task, attributed to itself.

Attribution: Label Studio Community gives no way for an admin to obtain another user's API
token, so the bot submits with the adapter's admin token and sets ``completed_by`` to its own
user id on ``POST /api/tasks/{id}/annotations/``; Label Studio 1.23 stores that user as the
annotator (``updated_by`` stays the admin). The bot reads only the tasks it has not annotated
(a Data Manager filter on annotators), a page at a time.

Answers are reproducible: the answer to an item depends only on the bot's seed and the item
id, not on the order or the batch in which the bot meets it.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from labelgate import progress
from labelgate.errors import LabelgateError, preview
from labelgate.labelstudio import LabelStudio

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 50
"""A bot says how many answers it has given after every this many (:func:`labelgate.progress.working`)."""


class BotLabeler:
    """A simulated labeler with a given accuracy and confusion pattern.

    Parameters
    ----------
    email
        The bot's Label Studio account (created on first use), e.g. ``"bot-1@labelgate.local"``.
    accuracy
        Probability in [0, 1] of giving the true class.
    confusion
        Where wrong answers go: true class index -> the class index given instead (indices into
        ``classes`` of ``work``). A class missing from the map gets a uniformly random wrong
        class; so does every class when ``confusion`` is None.
    seed
        Seed of the bot's answers.
    """

    def __init__(
        self, email: str, *, accuracy: float, confusion: Mapping[int, int] | None = None, seed: int = 0
    ) -> None:
        self.email = email
        self.accuracy = accuracy
        self.confusion = confusion
        self.seed = seed

    def __repr__(self) -> str:
        return f"BotLabeler({self.email!r}, accuracy={self.accuracy})"

    def answer(self, item_id: str, true_label: str, classes: Sequence[str]) -> str:
        """The bot's (reproducible) answer for one item whose true class is ``true_label``."""
        classes = list(classes)
        if true_label not in classes:
            raise LabelgateError(
                f"item {item_id!r}: true label {true_label!r} is not one of the classes {preview(classes)}"
            )
        rng = np.random.default_rng([self.seed, zlib.crc32(str(item_id).encode())])
        if len(classes) == 1 or rng.random() < self.accuracy:
            return true_label
        truth = classes.index(true_label)
        wrong = (self.confusion or {}).get(truth)
        if wrong is not None and wrong != truth:
            return classes[wrong]
        others = [c for c in classes if c != true_label]
        return others[int(rng.integers(len(others)))]

    def work(
        self,
        client: LabelStudio,
        project_id: int,
        *,
        truth: Mapping[str, str],
        classes: Sequence[str],
        limit: int | None = None,
        max_per_task: int | None = None,
    ) -> int:
        """Annotate the project's tasks this bot has not annotated yet; return how many.

        Parameters
        ----------
        client
            The Label Studio adapter (admin token).
        project_id
            The project to work in.
        truth
            item_id -> true class name. Tasks of items not in it are left alone.
        classes
            The class names, in the order ``confusion`` indexes them.
        limit
            At most this many annotations in this call (None: all it can do).
        max_per_task
            Leave tasks that already have this many annotations (any annotator, skips
            included); with k bots and ``max_per_task=k`` each task gets k answers.
            None: no cap; every bot answers every task once.

        A bot never annotates a task twice: it skips tasks that list it among their annotators,
        so calling ``work`` again after a crash continues where it stopped.
        """
        if not 0.0 <= self.accuracy <= 1.0:
            raise LabelgateError(f"{self!r}: accuracy must be in [0, 1]")
        self._check_confusion(len(classes))
        if limit is not None and limit <= 0:
            return 0
        user_id = client.ensure_user(self.email, first_name="Bot", last_name=self.email.split("@")[0])
        done = 0
        page_size = 100 if limit is None else min(1000, max(20, 2 * limit))
        for task in client.iter_tasks(project_id, exclude_annotator=user_id, page_size=page_size):
            item_id, annotators = task["item_id"], task["annotator_ids"]
            if item_id not in truth or user_id in annotators:
                continue
            if max_per_task is not None and len(annotators) >= max_per_task:
                continue
            label = self.answer(item_id, truth[item_id], classes)
            client.create_annotation(task["task_id"], label, project_id=project_id, completed_by=user_id)
            done += 1
            if done % PROGRESS_EVERY == 0:
                progress.working("bots", f"{self.email} has given {done} answers")
            if limit is not None and done >= limit:
                break
        logger.info("%s annotated %d tasks in project %s", self.email, done, project_id)
        return done

    def _check_confusion(self, n_classes: int) -> None:
        bad = [
            f"{k}->{v}"
            for k, v in (self.confusion or {}).items()
            if not (0 <= k < n_classes and 0 <= v < n_classes)
        ]
        if bad:
            raise LabelgateError(f"{self!r}: confusion indices outside 0..{n_classes - 1}: {preview(bad)}")
