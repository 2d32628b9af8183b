import subprocess
import sys

import pytest

from babysweep.core import schedule as S
def test_schedules():
    assert S.parse_schedule("4clm+16mlm+4clm") == ["clm"] * 4 + ["mlm"] * 16 + ["clm"] * 4
    assert S.parse_schedule(" 2MLM + 1clm ") == ["mlm", "mlm", "clm"]
    assert S.schedule_from_ratio(8, 0.5) == ["clm"] * 2 + ["mlm"] * 4 + ["clm"] * 2
    assert S.schedule_from_ratio(5, 0.4) == ["clm", "clm", "mlm", "mlm", "clm"]
    assert S.phases(None, 0.0, 3) == ["clm"] * 3
    for bad in ("", "4xlm", "0clm", "4clm++2mlm", "clm"):
        with pytest.raises(ValueError, match="AntLM schedule"):
            S.parse_schedule(bad)
    with pytest.raises(ValueError, match="train.epochs is 5"):
        S.phases("4clm", 0.0, 5)


def test_light_modules_do_not_import_torch():
    """Spec validation, the schedule grammar, ablation tables and the layout stay torch-free: `validate`
    and `status` must start fast."""
    code = ("import sys, babysweep.core.schedule, babysweep.spec.load, babysweep.studies.ablation, babysweep.core.paths, babysweep.core.records; "
            "print(sorted(m for m in ('torch', 'transformers', 'ray', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
