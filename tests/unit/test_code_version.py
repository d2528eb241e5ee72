"""The code version that keys cached stages and a published version's run."""

from __future__ import annotations

import re
from types import SimpleNamespace

import labelgate
import tasks.caching
import tasks.publish
from labelgate.code_version import code_version, source_hash
from tasks.publish import run_key


def test_source_hash_follows_python_files_only(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "notes.txt").write_text("not code")
    folders = [("pkg", tmp_path / "pkg")]
    before = source_hash(folders)
    (tmp_path / "pkg" / "notes.txt").write_text("still not code")
    assert source_hash(folders) == before
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    edited = source_hash(folders)
    assert edited != before
    (tmp_path / "pkg" / "a.py").rename(tmp_path / "pkg" / "b.py")
    assert source_hash(folders) not in (before, edited)


def test_code_version_is_the_release_plus_the_source_hash():
    assert re.fullmatch(re.escape(labelgate.__version__) + r"\+[0-9a-f]{12}", code_version())


def test_run_key_changes_with_the_code(monkeypatch):
    spec = SimpleNamespace(spec_hash=lambda: "spec")
    dataset = SimpleNamespace(fingerprint="data")
    monkeypatch.setattr(tasks.publish, "code_version", lambda: "0.1.0+aaaaaaaaaaaa")
    first = run_key(spec, dataset)
    assert run_key(spec, dataset) == first
    monkeypatch.setattr(tasks.publish, "code_version", lambda: "0.1.0+bbbbbbbbbbbb")
    assert run_key(spec, dataset) != first


def test_a_cached_stage_is_keyed_by_the_code(monkeypatch):
    """The autolabel and audit stages reuse a cached result only under the same code."""
    spec = SimpleNamespace(spec_hash=lambda: "spec")
    parameters = {"spec": spec, "dataset": SimpleNamespace(fingerprint="data")}
    key = tasks.caching._job_key("autolabel")
    monkeypatch.setattr(tasks.caching, "code_version", lambda: "0.1.0+aaaaaaaaaaaa")
    first = key(None, parameters)
    assert key(None, parameters) == first
    monkeypatch.setattr(tasks.caching, "code_version", lambda: "0.1.0+bbbbbbbbbbbb")
    assert key(None, parameters) != first
