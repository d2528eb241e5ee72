import numpy as np
import pandas as pd

from tasks.ingest import UNLABELED, Dataset
from tasks.quarantine import decide_status


def _dataset(given):
    n = len(given)
    return Dataset(
        ids=np.array([f"i{k}" for k in range(n)], dtype=object),
        X=np.zeros((n, 1)),
        given=np.array(given),
        classes=["neg", "pos"],
        kind="tabular",
        fingerprint="f",
        source="mem",
    )


def test_statuses_labels_and_readable_reasons():
    data = _dataset([0, 1, UNLABELED, UNLABELED])
    probs = np.array([[0.06, 0.94], [0.2, 0.8], [0.99, 0.01], [0.7, 0.3]])
    audit = pd.DataFrame({"is_suspect": [True, False], "quality": [0.06, 0.8], "neighbours_agree": [4, 5]})
    gates = {"neg": {"threshold": 0.95}, "pos": {"threshold": 0.9}}
    rows = decide_status(data, probs, audit, gates, target_accuracy=0.98, n_neighbours=5)
    assert rows["status"].tolist() == ["quarantined", "accepted", "accepted", "needs_review"]
    assert rows["source"].tolist() == ["given", "given", "model", "model"]
    # a quarantined item keeps its given label: it is flagged, never rewritten or deleted
    assert rows.loc[0, "label"] == "neg"
    assert rows.loc[0, "reason"] == (
        "given 'neg'; the model gives 'pos' p=0.94 (p('neg')=0.06); "
        "4 of 5 near neighbours agree with the model"
    )
    assert "below threshold 0.950" in rows.loc[3, "reason"]
    assert rows.loc[2, "label"] == "neg"
