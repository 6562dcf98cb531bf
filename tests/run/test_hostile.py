"""What a hostile user and bad luck did to a study (issue 20): nothing is recorded wrongly, nothing
is trained twice, nothing is lost, and every failure is one line saying what to do.

- weights that break on a phase's last step stop the run, naming the phase and the tensor;
- a finished run whose ``result.json`` was lost or damaged is measured again from its weights;
- settings that cannot change training (evaluation batch, workers, AMP on the CPU) keep the
  runs' folders, and a run written under the old identity rule keeps its name;
- a killed write's temporary file goes when the run resumes or finishes;
- a full disk, damaged records and damaged checkpoints end in one line naming the file and the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dsd import files
from dsd import records as runfolder
from dsd.errors import CheckpointError, RecordError
from dsd.run.execute import run_study
from dsd.run.identity import shared_identity
from dsd.run.settings import RunConfig
from dsd.run.training.log import NonFiniteWeightsError
from tests.run.toy_task import ToyConfig, ToyTask

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]
ROOT = Path(__file__).resolve().parents[2]
RECIPE = "D:4steps@0.05 S50%:4steps@0.02 D:4steps@0.005"


def settings(results: Path, **more: object) -> RunConfig:
    return RunConfig(results_dir=results, log_every=2, progress=False, deterministic=True, **more)


def study(results: Path, task: ToyTask | None = None, **more: object) -> dict[str, Path]:
    task = task or ToyTask(ToyConfig(recipe=RECIPE))
    return {
        files.read_json(f / "config.json")["method"]: f for f in run_study(task, settings(results, **more))
    }


class BreakingTask(ToyTask):
    """Its optimizer turns a weight to NaN on one step (a divergence the loss, computed before
    the update, never shows)."""

    break_at = 4  # the baseline's last step

    def build_optimizer(self, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        optimizer = super().build_optimizer(model, lr)
        steps = [0]

        def corrupt(*_: object) -> None:
            steps[0] += 1
            if steps[0] == self.break_at:
                with torch.no_grad():
                    model[3].weight[0, 0] = float("nan")

        optimizer.register_step_post_hook(corrupt)
        return optimizer


def test_weights_that_break_on_a_phase_s_last_step_stop_the_run_naming_phase_and_tensor(
    tmp_path: Path,
) -> None:
    with pytest.raises(
        NonFiniteWeightsError, match=r"end of phase D \(run phase 1 of 1\): 3\.weight holds 1 NaN"
    ):
        study(tmp_path, BreakingTask(ToyConfig(recipe=RECIPE)))
    baseline = next((tmp_path / "runs").glob("*/baseline-*/seed0"))
    assert not (baseline / runfolder.DONE_MARKER).exists() and not (baseline / runfolder.RESULT_FILE).exists()
    assert not (baseline / "phase0.pt").exists()  # no weights of a broken phase are kept


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    results = tmp_path_factory.mktemp("finished")
    return results, study(results)


@pytest.mark.parametrize("damage", ["missing", "not JSON", "no final"])
def test_a_finished_run_with_a_damaged_result_is_measured_again(
    finished: tuple[Path, dict[str, Path]], tmp_path: Path, damage: str
) -> None:
    results = tmp_path / "results"
    shutil.copytree(finished[0], results)
    dsd = next((results / "runs").glob("*/dsd-*/seed0"))
    before = files.read_json(dsd / runfolder.RESULT_FILE)
    if damage == "missing":
        (dsd / runfolder.RESULT_FILE).unlink()
    elif damage == "not JSON":
        (dsd / runfolder.RESULT_FILE).write_text("{torn")
    else:
        (dsd / runfolder.RESULT_FILE).write_text(
            json.dumps({k: v for k, v in before.items() if k != "final"})
        )
    task = ToyTask(ToyConfig(recipe=RECIPE))
    study(results, task)
    assert task.steps == 0  # nothing trained again
    after = files.read_json(dsd / runfolder.RESULT_FILE)
    assert after["final"] == before["final"] and after["phases"] == before["phases"]
    assert after["steps"] == before["steps"] and after["hash"] == before["hash"]


def test_a_finished_run_whose_weights_are_gone_too_names_the_folder_to_delete(
    finished: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    results = tmp_path / "results"
    shutil.copytree(finished[0], results)
    dsd = next((results / "runs").glob("*/dsd-*/seed0"))
    (dsd / runfolder.RESULT_FILE).unlink()
    (dsd / "phase2.pt").write_bytes(b"torn")
    with pytest.raises(RecordError, match=rf"{dsd}.*Delete the run folder; rerunning trains the run again"):
        study(results)


@pytest.mark.parametrize(
    ("task_config", "loop"),
    [({"eval_batch_size": 16}, {}), ({"workers": 0}, {}), ({}, {"amp": "off"}), ({}, {"amp": "bf16"})],
)
def test_settings_that_cannot_change_training_keep_the_runs(
    finished: tuple[Path, dict[str, Path]], task_config: dict, loop: dict
) -> None:
    results, reference = finished
    task = ToyTask(ToyConfig(recipe=RECIPE, **task_config))
    runs = study(results, task, **loop)
    assert runs == reference and task.steps == 0


def test_a_run_written_under_the_old_identity_rule_keeps_its_name(tmp_path: Path) -> None:
    """Before, the evaluation batch entered the hash: such a folder is found and reused."""
    config = ToyConfig(recipe=RECIPE, eval_batch_size=8)
    first = study(tmp_path, ToyTask(config))
    task = ToyTask(config)
    identity = shared_identity(task, settings(tmp_path), task.data_fingerprint().digest)
    baseline = first["baseline"]
    current, legacy = identity.hashes(
        {"schedule": json.loads((baseline / "config.json").read_text())["schedule"]}
    )
    assert current != legacy and f"baseline-{current}" == baseline.parent.name
    old = baseline.parent.with_name(f"baseline-{legacy}")
    baseline.parent.rename(old)  # as the old rule named it
    for folder in first.values():  # the branches name their baseline by its recorded hash
        if folder.parent.exists() and folder != baseline:
            shutil.rmtree(folder.parent)
    record = json.loads((old / "seed0" / "config.json").read_text())
    (old / "seed0" / "config.json").write_text(json.dumps({**record, "hash": legacy}))
    again = ToyTask(config)
    runs = study(tmp_path, again)
    assert runs["baseline"] == old / "seed0"
    assert again.steps == 8 + 8  # the two branches, not the baseline


def test_a_killed_write_s_temporary_file_goes_when_the_run_resumes(tmp_path: Path) -> None:
    task = ToyTask(ToyConfig(recipe=RECIPE))
    task.inject = {4 + 3: "crash"}
    with pytest.raises(RuntimeError, match="injected crash"):
        study(tmp_path, task, checkpoint_every=2)
    dsd = next((tmp_path / "runs").glob("*/dsd-*/seed0"))
    stale = dsd / ".checkpoint.pt.k1ll3d.tmp"
    stale.write_bytes(b"x" * 1000)  # what a kill -9 in the middle of a checkpoint write leaves
    study(tmp_path, ToyTask(ToyConfig(recipe=RECIPE)), checkpoint_every=2)
    assert not stale.exists() and not list((tmp_path / "runs").rglob("*.tmp"))


def test_damaged_records_and_checkpoints_name_the_file_and_the_fix(
    finished: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    results = tmp_path / "results"
    shutil.copytree(finished[0], results)
    baseline = next((results / "runs").glob("*/baseline-*/seed0"))
    (baseline / "config.json").write_text("{torn")
    with pytest.raises(RecordError, match=rf"{baseline}/config.json.*Delete the run folder {baseline}"):
        study(results)
    shutil.copytree(finished[0], results, dirs_exist_ok=True)  # repaired
    dsd = next((results / "runs").glob("*/dsd-*/seed0"))
    shutil.rmtree(dsd.parent)
    (baseline / "phase0.pt").write_bytes(b"torn")  # the weights the branches start from
    with pytest.raises(CheckpointError, match=rf"delete the run folder {baseline} that holds them"):
        study(results)


def test_a_damaged_resume_checkpoint_names_the_file_to_delete(tmp_path: Path) -> None:
    task = ToyTask(ToyConfig(recipe=RECIPE))
    task.inject = {4 + 3: "crash"}
    with pytest.raises(RuntimeError, match="injected crash"):
        study(tmp_path, task, checkpoint_every=2)
    checkpoint = next((tmp_path / "runs").glob("*/dsd-*/seed0")) / runfolder.CHECKPOINT_FILE
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"Delete {checkpoint} to train this run again from its start"):
        study(tmp_path, checkpoint_every=2)


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from tests.run.toy_task import ToyConfig, ToyTask
from tasks.cli.errors import run_guarded
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead

class Filling(ToyTask):
    def training_loss(self, model, batch):
        if self.steps == 6:  # the disk fills up during the DSD run
            resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
        return super().training_loss(model, batch)

run = RunConfig(results_dir=Path(sys.argv[1]), log_every=2, progress=False, checkpoint_every=1)
sys.exit(run_guarded(lambda: run_study(Filling(ToyConfig(recipe=sys.argv[2])), run) and 0))
"""


def test_a_full_disk_ends_in_one_line_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path), RECIPE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr and last.startswith("dsd-suite: error: cannot write ")
    assert f"{runfolder.CHECKPOINT_FILE}: " in last  # torch's own writer loses the errno: "cut short"
    assert ("File too large" in last or "the write was cut short" in last) and "the run resumes" in last
    dsd = next((tmp_path / "runs").glob("*/dsd-*/seed0"))
    saved = torch.load(dsd / runfolder.CHECKPOINT_FILE, weights_only=True)  # still whole
    assert saved["position"]["step"] >= 1
    assert not list(dsd.glob("*.tmp"))
