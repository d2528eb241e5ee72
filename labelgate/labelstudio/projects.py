"""Label Studio projects: found by title or made from the spec's labeling config, updated when
the config or the instructions change, and the ``<Choices>`` control their answers use."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from labelgate.errors import LabelgateError, ServiceError
from labelgate.labelstudio import wire
from labelgate.labelstudio.connection import Connection
from labelgate.labelstudio.wire import ChoiceControl

logger = logging.getLogger(__name__)


class Projects(Connection):
    """Projects: ``GET/POST /api/projects/``, ``GET/PATCH/DELETE /api/projects/{id}/``."""

    def ensure_project(
        self, *, title: str, label_config: str, instructions: str = "", annotators_per_task: int = 1
    ) -> int:
        """Return the id of the project called exactly ``title``, creating it if needed.

        A rerun finds the same project (never a second one); when several carry the title,
        the oldest wins. The labeling config and the instructions are updated when they
        changed. Label Studio refuses a config that drops labels existing annotations use:
        that refusal is a ``ServiceError`` carrying its message.

        Parameters
        ----------
        title
            The project's title (at most 50 characters), labelgate's identity for it, for
            example the label set name.
        label_config
            Labeling config XML, see ``labelgate.labelconfig.label_config``.
        instructions
            Shown to labelers in the instructions panel (HTML allowed).
        annotators_per_task
            Label Studio's ``maximum_annotations``: the label stream offers a task to this many
            different people before it counts as done.
        """
        if not title.strip() or len(title) > 50:
            raise LabelgateError(
                f"Label Studio project titles have 1 to 50 characters; got {len(title)}: {title!r}"
            )
        if annotators_per_task < 1:
            raise LabelgateError(f"annotators_per_task must be >= 1; got {annotators_per_task}")
        settings = {
            "label_config": label_config,
            "expert_instruction": instructions,
            "show_instruction": bool(instructions),
            "show_skip_button": True,
            "maximum_annotations": annotators_per_task,
        }
        found = [p for p in self._paged_projects(title) if p.get("title") == title]
        if not found:
            project = self._json("POST", "/api/projects/", json={"title": title, **settings})
            logger.info("created Label Studio project %s (%r)", project["id"], title)
            return int(project["id"])
        project = min(found, key=lambda p: p["id"])
        if len(found) > 1:
            logger.warning(
                "%d Label Studio projects are titled %r; using the oldest, %s",
                len(found),
                title,
                project["id"],
            )
        changed = {
            key: value
            for key, value in settings.items()
            if key != "label_config" and project.get(key) != value
        }
        if wire.squash(project.get("label_config", "")) != wire.squash(label_config):
            changed["label_config"] = label_config
        if changed:
            self._json("PATCH", f"/api/projects/{project['id']}/", json=changed)
            self._controls.pop(int(project["id"]), None)
            logger.info("updated %s of Label Studio project %s", ", ".join(sorted(changed)), project["id"])
        return int(project["id"])

    def find_project(self, title: str) -> int | None:
        """The id of the project titled exactly ``title`` (the oldest, if several), or None.

        Never creates one (``ensure_project`` does).
        """
        ids = [int(p["id"]) for p in self._paged_projects(title) if p.get("title") == title]
        return min(ids) if ids else None

    def project(self, project_id: int) -> dict[str, Any]:
        """The project's ``id``, ``title``, ``created_at`` (ISO string, UTC), ``task_number``,
        ``total_annotations_number`` (annotations that are not skips) and
        ``skipped_annotations_number``.

        ``created_at`` tells a project apart from a later one that reuses its id (after a
        delete), see ``tasks.annotation_sync.mirror_key``.
        """
        project = self._json("GET", f"/api/projects/{project_id}/")
        keys = (
            "id",
            "title",
            "created_at",
            "task_number",
            "total_annotations_number",
            "skipped_annotations_number",
        )
        return {key: project.get(key) for key in keys}

    def delete_project(self, project_id: int) -> None:
        """Delete a project with its tasks and annotations (cannot be undone)."""
        self._request("DELETE", f"/api/projects/{project_id}/")
        self._controls.pop(project_id, None)

    def choice_control(self, project_id: int) -> ChoiceControl:
        """The project's first ``<Choices>`` control (names used in results, and its classes)."""
        if project_id not in self._controls:
            project = self._json("GET", f"/api/projects/{project_id}/")
            parsed = project.get("parsed_label_config") or {}
            for name, control in parsed.items():
                if control.get("type") == "Choices" and control.get("to_name"):
                    self._controls[project_id] = ChoiceControl(
                        from_name=name,
                        to_name=control["to_name"][0],
                        labels=tuple(control.get("labels") or ()),
                    )
                    break
            else:
                raise ServiceError(
                    f"Label Studio project {project_id} at {self.url} has no <Choices> control "
                    "in its labeling config; labelgate only runs classification projects"
                )
        return self._controls[project_id]

    def _paged_projects(self, title: str) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            answer = self._json(
                "GET",
                "/api/projects/",
                params={
                    "title": title,
                    "page": page,
                    "page_size": 100,
                    "include": "id,title,label_config,expert_instruction,show_instruction,"
                    "show_skip_button,maximum_annotations",
                },
            )
            yield from answer.get("results", [])
            if not answer.get("next"):
                return
            page += 1
