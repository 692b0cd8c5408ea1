"""Replay tables fitted to a terminal: columns go in DROP_ORDER, none is squeezed below its longest cell."""

from __future__ import annotations

import pytest

from keras_relu_doctor.render.fit_table import DROP_ORDER, WRAPPING, fit_table, table_width
from keras_relu_doctor.replay.summary import SETTING_COLUMNS

ROWS = [
    ["relu-random_uniform-d1-more_epochs-article", "2", "0/2", "0.34", "0.34", "ok", "0.0003", "0.0005", "0.6399", "healthy"],
    ["relu-negative-d3", "2", "2/2", "0.67", "0.67", "zero", "0.8871", "0.8637", "0.6399", "dying_relu"],
]


@pytest.mark.parametrize("width", [60, 80, 100, 120, 160])
def test_kept_columns_fit_whole_and_go_in_the_stated_order(width):
    fitted = fit_table(SETTING_COLUMNS, ROWS, width)
    assert table_width(fitted.widths) <= width
    for position, column in enumerate(fitted.kept):
        if SETTING_COLUMNS[column] not in WRAPPING:
            assert fitted.widths[position] >= max(len(row[position]) for row in fitted.rows)
    ranks = [DROP_ORDER.index(name) for name in fitted.dropped]
    kept_droppable = [DROP_ORDER.index(SETTING_COLUMNS[column]) for column in fitted.kept if SETTING_COLUMNS[column] in DROP_ORDER]
    assert all(rank > max(ranks, default=-1) for rank in kept_droppable)  # nothing kept that goes before a dropped one
    assert {"setting", "verdict"} <= {SETTING_COLUMNS[column] for column in fitted.kept}


def test_names_are_cut_in_the_middle_when_nothing_else_can_go():
    fitted = fit_table(SETTING_COLUMNS, ROWS, 40)
    names = [row[0] for row in fitted.rows]
    original = ROWS[0][0]
    assert "…" in names[0] and names[0][:4] == original[:4] and names[0][-4:] == original[-4:]
    assert len(set(names)) == 2 and len(names[0]) == fitted.widths[0]
