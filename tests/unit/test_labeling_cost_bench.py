import numpy as np

from bench.labeling_cost import TEAM_ACCURACY, Crowd, Policy

CLASSES = ["a", "b", "c"]


def _crowd(seed=0):
    y = np.arange(30) % 3
    return Crowd(np.array([f"i{k}" for k in range(30)]), y, CLASSES, seed)


def test_answers_come_from_distinct_bots_and_are_reproducible():
    one, two = _crowd(), _crowd()
    one.ask(np.arange(30), until=3)
    two.ask(np.arange(30), until=1)
    two.ask(np.arange(30), until=3)
    assert one.used == two.used == 90
    assert one.answers == two.answers
    frame = one.annotations(np.arange(30))
    assert (frame.groupby("item_id")["annotator"].nunique() == 3).all()
    one.ask([0], until=99)  # never more answers than team members
    assert len(one.answers[0]) == len(TEAM_ACCURACY)


def test_an_item_is_settled_by_agreement():
    crowd = _crowd()
    crowd.answers[:4] = [[0], [0], [0, 1], [0, 0, 1]]
    crowd.rows = [  # the answers as annotation rows too (the posterior rule reads those)
        (crowd.ids[i], f"bot{j}", CLASSES[c])
        for i, given in enumerate(crowd.answers)
        for j, c in enumerate(given)
    ]
    pred = np.eye(3)[[0, 1, 0, 0]] * 0.9 + 0.1 / 3
    open_ = crowd.unsettled(np.arange(4), pred, Policy(settle="model"))
    assert open_.tolist() == [False, True, True, False]
    assert crowd.unsettled(np.arange(1), pred[:1], Policy(settle="votes")).tolist() == [True]
    # posterior: one answer agreeing with a sure model settles, with an unsure one it does not
    sure, unsure = np.array([[0.99, 0.005, 0.005]]), np.array([[0.5, 0.3, 0.2]])
    assert not crowd.unsettled(np.arange(1), sure, Policy(settle="posterior")).any()
    assert crowd.unsettled(np.arange(1), unsure, Policy(settle="posterior")).all()
