"""Tables that fit a terminal: short unique headers, 3-4 significant figures, no cut cells."""

import io

import pytest
from rich.console import Console

from babysweep.core.fit_table import number, short_headers


def test_short_headers_are_aliases_or_last_parts_and_unique():
    names = short_headers(["distill.alpha", "distill.temperature", "train.lr", "train.weight_decay", "model.dropout",
                           "model.hidden", "a.x.dropout", "tune/loss", "blimp/field/morphology", "blimp/field/syntax"])
    assert names["distill.alpha"] == "alpha" and names["distill.temperature"] == "T"
    assert names["train.lr"] == "lr" and names["train.weight_decay"] == "wd" and names["tune/loss"] == "tune"
    assert names["blimp/field/morphology"] == "morphology" and names["model.hidden"] == "hidden"
    assert names["a.x.dropout"] == "dropout"  # the alias "drop" is model.dropout's
    assert len(set(names.values())) == len(names)
    clash = short_headers(["a.b.size", "c.d.size"])
    assert clash == {"a.b.size": "b.size", "c.d.size": "d.size"}
    assert short_headers(["x.trial"], taken=("trial",)) == {"x.trial": "x.trial"}


@pytest.mark.parametrize("value, text", [(3.123456, "3.123"), (0.000312345, "0.0003123"), (51.2345, "51.23"),
                                         (12, "12"), (None, "-"), ("llama", "llama"), (1.0e-5, "1e-05")])
def test_numbers_to_four_significant_figures(value, text):
    assert number(value) == text


SPEC = """name: students
role: student
model: {layers: 1, hidden: 32, heads: 2}
train: {epochs: 4, lr: {loguniform: [1.0e-4, 1.0e-2]}, weight_decay: {lognormal: [-2.3, 1.0]}, warmup_steps: {randint: [0, 200]},
        batch_size: {choice: [16, 32]}}
distill: {teachers: [/tmp/t1/final, /tmp/t2/final], temperature: {uniform: [1.0, 4.0]}, alpha: {uniform: [0.0, 1.0]}}
antlm: {schedule: {choice: ["4clm", "1clm+2mlm+1clm"]}}
data: {tune_split: 0.1}
search: {algorithm: random, samples: 6, scheduler: asha, metric: tune/loss, concurrent: 2}
"""


@pytest.mark.parametrize("width", [80, 160])
def test_the_live_table_of_run_fits_without_cut_cells_or_repeated_headers(width):
    from babysweep.spec.load import spec_from_text
    from babysweep.sweep.callback import SweepCallback

    spec = spec_from_text(SPEC, "students.yaml")
    view = SweepCallback(name="students", folder="/nonexistent", tracking_uri="sqlite:///x.db", spec_text="", role="student",
                         metric="tune/loss", mode="min", total=6, max_epochs=4, models="best", search_settings={},
                         live=False, spec=spec)
    for i, state in enumerate(["running", "done", "stopped", "error", "running", "pending"]):
        view.rows[f"{i:08x}"] = {"state": state, "epoch": 2, "current": 3.123456 + i, "best": 3.0123456, "point": None,
                                 "note": "asha@1" if state == "stopped" else "", "error": "ValueError: hidden must be even",
                                 "params": {"train.lr": 0.000312345 * (i + 1), "train.weight_decay": 0.1234567,
                                            "train.warmup_steps": 17 * i, "train.batch_size": 16, "distill.temperature": 2.3456,
                                            "distill.alpha": 0.61234, "antlm.schedule": "1clm+2mlm+1clm"}}
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(view._table(width))
    text = out.getvalue()
    assert "…" not in text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("trial "))
    assert all(len(line.rstrip()) <= width for line in lines[lines.index(header):lines.index(header) + 8])
    names = header.split()
    assert len(names) == len(set(names)) and {"trial", "state", "epoch", "tune", "best"} <= set(names)
    assert "3.123" in text and "3.1234" not in text
    assert "error in 00000003: ValueError: hidden must be even" in text
    assert "ASHA" not in text and "asha@1" in text
    if width == 160:
        assert {"T", "alpha", "lr", "wd"} <= set(names)
        assert "T = distill.temperature" in text and "alpha = distill.alpha" in text
    else:
        assert "not shown here: " in text and "babysweep status students TRIAL" in text
