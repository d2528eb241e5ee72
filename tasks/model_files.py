"""model_files: save and load fitted models with skops (no pickle), named by content hash.

``model_bytes`` gives a model's skops bytes and its version (a hash of canonical bytes, so the
same fit always gets the same version); ``save_model`` / ``load_model`` write and read a file;
``load_model`` refuses types outside :data:`TRUSTED_MODULE_PREFIXES`. The fast path for fitted
TF-IDF vocabularies writes exactly what skops writes, without one array file per term.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer

from labelgate.errors import LabelgateError

logger = logging.getLogger(__name__)

#: Module prefixes whose types :func:`load_model` accepts from a skops file.
TRUSTED_MODULE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "tasks.autolabel.")


def _compact_vocabularies(model: Any) -> None:
    """Make fitted text vectorizers cheap to save, without changing what they compute.

    ``vocabulary_`` maps terms to NumPy integers, which skops stores one array file each (and
    slowly: quadratic in their number); plain ints are stored as JSON. ``stop_words_`` is only
    for introspection (scikit-learn documents that it can be removed).
    """
    seen: list[Any] = [model]
    while seen:
        est = seen.pop()
        if isinstance(est, TfidfVectorizer) and hasattr(est, "vocabulary_"):
            est.vocabulary_ = {term: int(i) for term, i in est.vocabulary_.items()}
            if hasattr(est, "stop_words_"):
                del est.stop_words_
        for attr in ("estimators_", "steps", "transformer_list"):
            for part in getattr(est, attr, None) or []:
                seen.append(part[1] if isinstance(part, tuple) else part)
        for attr in ("estimator", "base_estimator"):
            if hasattr(est, attr) and isinstance(getattr(est, attr), BaseEstimator):
                seen.append(getattr(est, attr))


def _vocabulary_node_json(vocab: dict, ids: tuple[int, int]) -> list[str] | None:
    """The skops schema node of a ``{str: int}`` vocabulary as JSON text (in pieces), or None.

    The pieces joined are exactly what ``json.dumps(skops get_state(vocab))`` writes (a DictNode of
    JsonNodes with a ListNode of str TypeNodes), without building a Python dict per term: for
    2**18 terms that is ~0.5M dicts, ~4 s and ~300 MB. ``ids`` are the ``__id__``s of the dict and
    of its key-type list; every other id is that of a live object, as skops' own are.
    """
    if not all(type(k) is str and type(v) is int for k, v in vocab.items()):
        return None
    enc = json.encoder.encode_basestring_ascii
    head = '{"__class__": "str", "__module__": "builtins", "__loader__": '
    key_type = f'{head}"TypeNode", "__id__": {id(str)}}}'
    return [
        '{"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {',
        ", ".join(
            f'{enc(k)}: {head}"JsonNode", "content": "{v}", "is_json": true, "__id__": {id(v)}}}'
            for k, v in vocab.items()
        ),
        '}, "key_types": {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", '
        '"content": [',
        ", ".join([key_type] * len(vocab)),
        f'], "__id__": {ids[1]}}}, "__id__": {ids[0]}}}',
    ]


def _skops_dumps(model: Any) -> bytes:
    """``skops.io.dumps(model)``, fast for fitted TF-IDF vocabularies.

    The same zip entries and the same schema as skops 0.16 writes, two differences in how:
    schema.json is written by the json C encoder (skops passes ``indent=2``, which forces the
    pure-Python encoder: ~35 s and ~0.9 GB for a 100k-item text model), so only whitespace
    differs; and large vocabularies are written straight to JSON text by
    :func:`_vocabulary_node_json`, checked against skops' own output on a sample of each
    vocabulary. Where anything is not as expected, skops does the whole dump itself.
    """
    import skops.io  # here, not on top: importing skops walks every scikit-learn estimator (about
    # 1 s), and a run whose autolabel stage is cached (a rerun after people answered) needs none

    try:
        from skops.io._utils import SaveContext, get_state
    except ImportError:  # pragma: no cover - skops is pinned to 0.16.x, whose internals these are
        return skops.io.dumps(model)

    id_field = re.compile(r'"__id__": \d+')

    def same_as_skops(vocab: dict) -> bool:
        sample = dict(list(vocab.items())[:3])
        with zipfile.ZipFile(io.BytesIO(), "w") as scratch:
            expected = json.dumps(get_state(sample, SaveContext(zip_file=scratch)))
        ours = _vocabulary_node_json(sample, (0, 0))
        return ours is not None and id_field.sub("", "".join(ours)) == id_field.sub("", expected)

    # swap every large vocabulary for a placeholder while skops walks the model
    swapped: list[tuple[Any, dict, dict, object]] = []
    todo: list[Any] = [model]
    while todo:
        est = todo.pop()
        vocab = getattr(est, "vocabulary_", None) if isinstance(est, TfidfVectorizer) else None
        if isinstance(vocab, dict) and len(vocab) > 1000 and same_as_skops(vocab):
            # the key-type list's id must be unique while the schema is written: a live object
            swapped.append((est, vocab, {}, object()))
        for attr in ("estimators_", "steps", "transformer_list"):
            for part in getattr(est, attr, None) or []:
                todo.append(part[1] if isinstance(part, tuple) else part)
        for attr in ("estimator", "base_estimator"):
            if isinstance(getattr(est, attr, None), BaseEstimator):
                todo.append(getattr(est, attr))
    for est, _, placeholder, _ in swapped:
        est.vocabulary_ = placeholder
    buffer, understood = io.BytesIO(), True
    try:
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zip_file:
            save_context = SaveContext(zip_file=zip_file)
            state = get_state(model, save_context)
            save_context.clear_memo()
            state["protocol"] = save_context.protocol
            state["_skops_version"] = skops.__version__
            # put a marker where each placeholder's node is; the vocabulary's JSON goes there
            markers = {id(placeholder): i for i, (_, _, placeholder, _) in enumerate(swapped)}
            found: dict[str, int] = {}
            stack: list[Any] = [state]
            while stack:
                node = stack.pop()
                for key, child in list(node.items() if isinstance(node, dict) else enumerate(node)):
                    if isinstance(child, dict) and child.get("__id__") in markers:
                        marker = f"\x00labelgate-vocabulary-{markers[child['__id__']]}\x00"
                        found[json.dumps(marker)] = markers[child["__id__"]]
                        node[key] = marker
                    elif isinstance(child, tuple):  # TupleNode content: a JSON array all the same
                        node[key] = list(child)
                        stack.append(node[key])
                    elif isinstance(child, dict | list):
                        stack.append(child)
            understood = len(found) == len(swapped)
            if understood:
                # (text, from the state?) pieces; only state text is searched for markers
                pieces = [(json.dumps(state), True)]
                del state
                for marker, i in found.items():
                    at = next(j for j, (text, own) in enumerate(pieces) if own and marker in text)
                    before, after = pieces[at][0].split(marker, 1)
                    _, vocab, _, key_list = swapped[i]
                    node = _vocabulary_node_json(vocab, (id(vocab), id(key_list))) or []
                    pieces[at : at + 1] = [(before, True), *((p, False) for p in node), (after, True)]
                with zip_file.open("schema.json", "w") as handle:
                    while pieces:
                        handle.write(pieces.pop(0)[0].encode("ascii"))
    finally:
        for est, vocab, _, _ in swapped:
            est.vocabulary_ = vocab
    return buffer.getvalue() if understood else skops.io.dumps(model)


def model_bytes(model: Any, *, canonical: bool = True) -> tuple[bytes, str]:
    """The skops file of ``model`` as bytes, and its version (first 12 hex of their sha256).

    ``canonical=True`` rewrites the file so that the same model always gives the same bytes (and
    version); that costs about as much again as the dump for models with large vocabularies, so
    the pipeline, whose stages are cached by their inputs anyway, passes False: the version then
    names this file's exact content, not every equal refit.
    """
    _compact_vocabularies(model)
    data = _skops_dumps(model)
    if canonical:
        data = _canonical_skops(data)
    return data, hashlib.sha256(data).hexdigest()[:12]


def save_model(model: Any, directory: str | Path) -> tuple[Path, str]:
    """Save a fitted model with skops under a content-addressed name.

    Parameters
    ----------
    model
        A fitted scikit-learn estimator (e.g. from :func:`fit_model`).
    directory
        Folder to write into; created if missing.

    Returns
    -------
    (path, version)
        ``version`` is the first 12 hex digits of the sha256 of the saved bytes, so the same
        model saves to the same version; ``path`` is ``directory / f"model-{version}.skops"``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data, version = model_bytes(model)
    path = directory / f"model-{version}.skops"
    if not path.exists():
        with tempfile.NamedTemporaryFile(dir=directory, delete=False, suffix=".tmp") as fh:
            fh.write(data)
        Path(fh.name).replace(path)
    logger.info("saved model version %s to %s", version, path)
    return path, version


_ID_FIELD = re.compile(r'"__id__": (\d+)')
_NPY_NAME = re.compile(r"^(\d+)\.npy$")
_NUMBER = re.compile(r"(?<![\d.])\d{6,}(?!\d)")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _canonical_skops(data: bytes) -> bytes:
    """Rewrite a skops file so that the same model always gives the same bytes.

    skops names objects by their ``id()`` and stamps the zip entries with the current time;
    both change from run to run. Ids are renumbered in order of first appearance in the schema,
    entries are sorted and stamped with a fixed time. The result loads like the original.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        entries = {info.filename: src.read(info) for info in src.infolist()}
    schema = entries.pop("schema.json").decode("utf-8")
    ids = {m.group(1) for name in entries if (m := _NPY_NAME.match(name))}
    ids |= set(_ID_FIELD.findall(schema))
    first_seen = {}
    for m in _NUMBER.finditer(schema):
        first_seen.setdefault(m.group(0), m.start())
    order = sorted(ids, key=lambda i: (first_seen.get(i, len(schema)), i))
    mapping = {old: str(new) for new, old in enumerate(order, start=1)}
    schema = _NUMBER.sub(lambda m: mapping.get(m.group(0), m.group(0)), schema)
    renamed = {"schema.json": schema.encode("utf-8")}
    for name, blob in entries.items():
        m = _NPY_NAME.match(name)
        renamed[f"{mapping[m.group(1)]}.npy" if m else name] = blob
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(renamed):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, renamed[name])
    return out.getvalue()


def _is_trusted(type_name: str) -> bool:
    return type_name.startswith(TRUSTED_MODULE_PREFIXES)


def load_model(path: str | Path) -> Any:
    """Load a model saved by :func:`save_model`.

    Only types from scikit-learn, NumPy, SciPy and this module are trusted; a file that needs
    anything else is refused.

    Raises
    ------
    LabelgateError
        If the file is missing or holds types outside the trusted modules.
    """
    import skops.io  # not on top: see _skops_dumps

    path = Path(path)
    if not path.is_file():
        raise LabelgateError(f"model file {str(path)!r} does not exist")
    untrusted = skops.io.get_untrusted_types(file=path)
    refused = [t for t in untrusted if not _is_trusted(t)]
    if refused:
        raise LabelgateError(f"model file {str(path)!r} holds untrusted types {refused}; refusing to load it")
    return skops.io.load(path, trusted=untrusted)
