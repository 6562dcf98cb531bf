"""``dsd-suite sweep`` and ``--method all-ablations`` at the command line: bad sparsities and method
typos are refused before anything is built, naming the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.cli import main
from tasks.cli.arguments import methods as _methods
from tasks.cli.errors import PREFIX

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.parametrize(
    ("sparsities", "named"),
    [
        ("0.3,1.5", "1.5"),
        ("0.3,0.3", "0.3 is given twice"),
        ("0", "0.0"),
        ("0.3,x", "'0.3,x'"),
        ("", "empty"),
    ],
)
def test_a_bad_sweep_is_refused_before_any_work(place: Path, capsys, sparsities: str, named: str) -> None:
    code = main(["sweep", "imagenet", "--sparsities", sparsities])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(PREFIX) and named in err
    assert not any(place.iterdir())  # no stand-in, cache or run folder


def test_a_method_typo_lists_the_valid_methods(place: Path, capsys) -> None:
    code = main(["run", "imagenet", "--method", "dsd,dsd-randommask"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    for name in ("all-ablations", "dsd-random-mask", "dsd-reinit", "dense-control"):
        assert name in err
    assert not any(place.iterdir())


def test_all_keeps_the_papers_comparison_and_all_ablations_adds_the_ablations() -> None:
    assert _methods("all") == ["baseline", "dsd", "dense-control"]
    assert _methods("all-ablations") == [
        "baseline", "dsd", "dense-control", "dsd-random-mask", "dsd-reinit", "dsd-reset-state",
    ]  # fmt: skip
    assert _methods("rivals") == ["baseline", "dsd", "dense-control", "acdc"]


def test_a_wrong_acdc_recipe_is_refused_in_one_line_naming_the_flag(place: Path, capsys) -> None:
    code = main(["run", "imagenet", "--method", "rivals", "--acdc", "cycle=3"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    (line,) = [x for x in err.strip().splitlines() if x.startswith(PREFIX)]
    assert "--acdc 'cycle=3': cannot read 'cycle=3'; expected key=value with keys sparsity" in line
    assert not any(place.iterdir())
