"""The review-sync's "is this batch complete?" check lists only the tasks that may lack answers
(flows/review_sync.py), with a fake adapter that applies the same server-side filters."""

from __future__ import annotations

from types import SimpleNamespace

from flows.review_sync import review_batch_status


class FakeTasks:
    def __init__(self, tasks: list[tuple[str | None, int, int]]) -> None:
        self.tasks = [
            {
                "task_id": i,
                "item_id": item,
                "annotator_ids": [],
                "total_annotations": n,
                "cancelled_annotations": c,
            }
            for i, (item, n, c) in enumerate(tasks, start=1)
        ]
        self.listed = 0

    def count_tasks(self, project_id, *, min_annotations=None):
        return sum(
            1 for t in self.tasks if min_annotations is None or t["total_annotations"] >= min_annotations
        )

    def iter_tasks(self, project_id, *, fewer_annotations_than=None, exclude_annotator=None, page_size=1000):
        for task in self.tasks:
            if fewer_annotations_than is None or task["total_annotations"] < fewer_annotations_than:
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
    foreign = FakeTasks([("i1", 1, 0), (None, 0, 0)])
    assert review_batch_status(foreign, _spec(1), project_id=1).complete
    assert not review_batch_status(FakeTasks([]), _spec(1), project_id=1).complete
