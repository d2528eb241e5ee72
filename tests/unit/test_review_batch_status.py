"""The review-sync's "is this batch complete?" check lists only the tasks that may lack answers
(flows/review_sync.py), with a fake adapter that applies the same server-side filters. The real
filters are checked against Label Studio in
``tests/integration/test_labelstudio.py::test_a_task_asked_for_one_more_answer_is_offered_again_until_it_has_it``."""

from __future__ import annotations

from types import SimpleNamespace

from flows.review_sync import review_batch_status


class FakeTasks:
    """Tasks as Label Studio keeps them: ``overlap`` is the project's annotators per task unless
    raised for one task; a task is labeled once it has that many annotations, skips aside."""

    def __init__(self, tasks: list[tuple], *, overlap: int = 2) -> None:
        self.tasks = [
            {
                "task_id": i,
                "item_id": row[0],
                "annotator_ids": [],
                "total_annotations": row[1],
                "cancelled_annotations": row[2],
                "overlap": row[3] if len(row) > 3 else overlap,
            }
            for i, row in enumerate(tasks, start=1)
        ]
        self.listed = self.counted = 0

    @staticmethod
    def _labeled(task: dict) -> bool:
        # the Data Manager's completed_at: the newest annotation of a task marked labeled, so a
        # retired task (overlap 0) that nobody answered still lists as not labeled
        return task["total_annotations"] >= task["overlap"] and task["total_annotations"] > 0

    def count_tasks(self, project_id, *, labeled=None):
        self.counted += 1
        return sum(1 for t in self.tasks if labeled is None or self._labeled(t) == labeled)

    def iter_tasks(self, project_id, *, unlabeled=False, exclude_annotator=None, items=None, page_size=1000):
        for task in self.tasks:
            if items is not None and task["item_id"] not in items:
                continue  # Label Studio filters these out (data.item_id in list)
            if not unlabeled or not self._labeled(task):
                self.listed += 1
                yield task


def _spec(k: int):
    return SimpleNamespace(review=SimpleNamespace(annotators_per_item=k))


def test_a_batch_is_complete_when_every_task_has_its_answers_skips_included():
    client = FakeTasks([(f"i{i}", 2, 0) for i in range(1000)] + [("s1", 1, 1), ("s2", 0, 2)])
    status = review_batch_status(client, _spec(2), project_id=1)
    assert status.complete and status.tasks == 1002 and status.answered == 1002
    assert client.listed == 2  # only the tasks short of annotations were listed, not all 1002


def test_one_short_task_keeps_the_batch_open_and_the_check_stops_there():
    client = FakeTasks([(f"i{i}", 0, 0) for i in range(1000)])
    status = review_batch_status(client, _spec(2), project_id=1)
    assert not status.complete and status.answered == 0 and client.listed == 1
    partly = FakeTasks([(f"i{i}", 2, 0) for i in range(10)] + [("late", 1, 0)])
    assert not review_batch_status(partly, _spec(2), project_id=1).complete


def test_tasks_not_made_by_labelgate_and_empty_projects_do_not_count():
    foreign = FakeTasks([("i1", 1, 0), (None, 0, 0)], overlap=1)
    assert review_batch_status(foreign, _spec(1), project_id=1).complete
    assert not review_batch_status(FakeTasks([]), _spec(1), project_id=1).complete


def test_a_task_asked_for_one_more_answer_keeps_the_batch_open_until_it_has_it():
    """The flow raised one task's overlap to 3 (one more person, to settle a disagreement): at
    the spec's 2 answers the batch is not complete, so the sync does not resume the run only for
    it to suspend again."""
    waiting = FakeTasks([(f"i{i}", 2, 0) for i in range(100)] + [("disputed", 2, 0, 3)])
    status = review_batch_status(waiting, _spec(2), project_id=1)
    assert not status.complete and status.answered == 100 and waiting.listed == 1
    answered = FakeTasks([(f"i{i}", 2, 0) for i in range(100)] + [("disputed", 3, 0, 3)])
    assert review_batch_status(answered, _spec(2), project_id=1).complete


def test_a_task_the_run_does_not_wait_for_does_not_keep_it_waiting():
    """A routing that changed after people edited answers (or an old job) leaves tasks nobody
    asks about unanswered in the project: with the items the run recorded, only those count."""
    tasks = [(f"new{i}", 2, 0) for i in range(20)] + [(f"old{i}", 0, 0) for i in range(5)]
    awaited = frozenset(f"new{i}" for i in range(20))
    status = review_batch_status(FakeTasks(tasks), _spec(2), project_id=1, awaited=awaited)
    assert status.complete and status.tasks == 20 and status.answered == 20
    # without the record, every task of the project counts, as before
    assert not review_batch_status(FakeTasks(tasks), _spec(2), project_id=1).complete
    # an awaited task that lacks answers still keeps it open, after the others
    late = FakeTasks([(f"old{i}", 0, 0) for i in range(5)] + [("new0", 1, 0), ("new1", 2, 0)])
    status = review_batch_status(late, _spec(2), project_id=1, awaited=frozenset({"new0", "new1"}))
    assert not status.complete and status.tasks == 2 and 0 <= status.answered <= 1


def test_a_retired_task_does_not_keep_a_batch_open():
    """A task no run asks about any more (``LabelStudio.retire_tasks``: overlap 0, no answer) is
    not waited for, even by a run that recorded no awaited items; one still offered is."""
    retired = FakeTasks([(f"i{i}", 2, 0) for i in range(10)] + [("stale", 0, 0, 0)])
    assert review_batch_status(retired, _spec(2), project_id=1).complete
    offered = FakeTasks([(f"i{i}", 2, 0) for i in range(10)] + [("stale", 0, 0, 2)])
    assert not review_batch_status(offered, _spec(2), project_id=1).complete


def test_an_exact_check_counts_every_awaited_task_that_has_its_answers():
    """The review-sync's progress bar (tasks/wait_progress.py): with ``exact`` the listing goes
    on past the first short task, so the count of answered tasks is exact, not a lower bound."""
    tasks = (
        [(f"done{i}", 2, 0) for i in range(30)]
        + [(f"short{i}", 1, 0) for i in range(7)]
        + [("skipped", 1, 1), ("disputed", 2, 0, 3), ("old", 0, 0)]
    )
    awaited = frozenset(t[0] for t in tasks) - {"old"}
    quick = FakeTasks(tasks)
    status = review_batch_status(quick, _spec(2), project_id=1, awaited=awaited)
    assert not status.complete and quick.listed == 1 and status.answered < 31
    full = FakeTasks(tasks)
    status = review_batch_status(full, _spec(2), project_id=1, awaited=awaited, exact=True)
    # 30 done and one through a skip have their answers; 7 short and the disputed one do not
    assert (status.tasks, status.answered, status.short) == (39, 31, 8) and not status.complete
    assert full.listed == 9  # the awaited tasks Label Studio does not count as labeled, all of them
    assert full.counted == 0  # and nothing else is asked
    # without a record, every labelgate task of the project counts, "old" among the short ones
    status = review_batch_status(FakeTasks(tasks), _spec(2), project_id=1, exact=True)
    assert (status.tasks, status.answered, status.short) == (40, 31, 9)
    # a complete batch reads the same either way
    every = FakeTasks([(f"i{i}", 2, 0) for i in range(5)])
    assert review_batch_status(every, _spec(2), project_id=1, exact=True) == review_batch_status(
        FakeTasks([(f"i{i}", 2, 0) for i in range(5)]), _spec(2), project_id=1
    )
