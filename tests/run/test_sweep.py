"""The sparsity sweep: refusals before any work, iterated recipes scaled alike, one shared baseline
and control, and the manifest the report reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsd import files
from dsd.errors import ConfigError
from dsd.run.settings import RunConfig
from dsd.run.sweep import check_sparsities, run_sweep, selection_splits, swept_recipe
from dsd.schedule import Schedule
from tests.run.toy_task import ToyConfig, ToyTask

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ([], "empty"),
        ([0.3, 1.0], "1.0"),
        ([0.0], "0.0"),
        ([-0.1], "-0.1"),
        ([0.3, 0.5, 0.3], "0.3 is given twice"),
    ],
)
def test_bad_sparsities_are_refused_naming_the_value(values: list[float], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        check_sparsities(values)


def test_iterated_recipes_scale_every_sparse_phase_by_the_same_factor() -> None:
    recipe = Schedule.parse("D:5@1e-3 S50%:1@5e-4 D:1@3e-4 S25%:1@1e-4 D:1@3e-5")
    swept = swept_recipe(recipe, 0.3)
    assert [p.label for p in swept.phases] == ["D", "S30%", "D", "S15%", "D"]
    assert [(p.length, p.lr) for p in swept.phases] == [(p.length, p.lr) for p in recipe.phases]
    with pytest.raises(ConfigError, match="prunes every weight"):
        swept_recipe(Schedule.parse("D:1@0.1 S50%:1@0.1 D:1@0.1 S90%:1@0.1"), 0.7)


def test_the_choice_and_its_reading_use_the_first_and_last_splits() -> None:
    assert selection_splits(["val", "test"]) == ("val", "test")
    assert selection_splits(["dev93", "eval92"]) == ("dev93", "eval92")
    assert selection_splits(["test"]) == ("test", "test")


def test_a_sweep_shares_one_baseline_and_one_control(tmp_path: Path) -> None:
    task = ToyTask(ToyConfig(recipe="D:1@0.05 S50%:1@0.02 D:1@0.005"))
    run = RunConfig(results_dir=tmp_path, log_every=5, progress=False)
    manifest = files.read_json(run_sweep(task, run, [0.6, 0.2]))
    assert manifest["sparsities"] == [0.2, 0.6] and manifest["selection_split"] == "val"
    assert manifest["report_split"] == "test"
    assert manifest["recipes"] == {
        "0.2": "D:1@0.05 S20%:1@0.02 D:1@0.005",
        "0.6": "D:1@0.05 S60%:1@0.02 D:1@0.005",
    }
    runs = manifest["runs"]
    assert set(runs) == {"0.2", "0.6"}
    shared = set(runs["0.2"]) & set(runs["0.6"])
    assert {Path(f).parent.name.split("-")[0] for f in shared} == {"baseline", "dense"}  # one each
    assert len(list(tmp_path.glob("runs/*/baseline-*/seed0/done"))) == 1
    assert len(list(tmp_path.glob("runs/*/dense-control-*/seed0/done"))) == 1
    assert len(list(tmp_path.glob("runs/*/dsd-*/seed0/done"))) == 2
    assert task.prepared == 1  # one study over both recipes: the data is prepared once
    fresh = RunConfig(results_dir=tmp_path / "fresh", progress=False)
    prepared_before = task.prepared
    with pytest.raises(ConfigError, match=r"0\.5 is given twice"):
        run_sweep(task, fresh, [0.5, 0.5])
    assert not (tmp_path / "fresh").exists() and task.prepared == prepared_before  # refused before any work
