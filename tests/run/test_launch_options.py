"""What a launch asks SLURM for, read without a cluster: the sbatch options of a run's job, the
pass-through, a run on several GPUs as one multi-task job, the time limit's forms, and the log
name that ``status`` shares with submitit."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import submitit
from submitit.slurm.slurm import _make_sbatch_string

from dsd.errors import ConfigError
from dsd.records.layout import job_log
from dsd.run.launch.slurm import SlurmOptions
from tasks.cli.launch import minutes


def sbatch(options: SlurmOptions, tmp_path: Path) -> str:
    """The script submitit would hand to sbatch for one run's job."""
    return _make_sbatch_string(command="run", folder=tmp_path, **options.parameters("dsd-seed0"),
                               additional_parameters=options.extra())  # fmt: skip


def test_a_run_on_several_gpus_is_one_job_with_a_task_per_gpu(tmp_path: Path) -> None:
    options = SlurmOptions(partition="gpu", account="lab", qos="high", time_minutes=2880, nodes=2,
                           gpus_per_run=16, cpus_per_task=8, mem="256G",
                           sbatch=["--constraint=a100 --exclusive"])  # fmt: skip
    script = sbatch(options, tmp_path)
    for line in ("--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--cpus-per-task=8",
                 "--partition=gpu", "--account=lab", "--qos=high", "--time=2880", "--mem=256G",
                 "--constraint=a100", "--signal=USR2@120", "--open-mode=append"):  # fmt: skip
        assert f"#SBATCH {line}\n" in script, (line, script)
    assert "#SBATCH --exclusive\n" in script
    assert "--error" not in script  # standard error goes to the one log status reads


def test_a_cpu_run_is_one_task_and_a_bad_split_is_refused(tmp_path: Path) -> None:
    script = sbatch(SlurmOptions(), tmp_path)
    assert "#SBATCH --ntasks-per-node=1\n" in script and "gpus" not in script
    with pytest.raises(ConfigError, match="--gpus-per-run 6 does not split evenly over --nodes 4"):
        SlurmOptions(gpus_per_run=6, nodes=4).tasks_per_node()
    with pytest.raises(ConfigError, match="give sbatch's long options"):
        SlurmOptions(sbatch=["-C a100"]).extra()


def test_time_limits_in_slurms_forms() -> None:
    assert [minutes(t) for t in ("90", "45:00", "1:30:00", "2-00", "1-02:30", "1-00:00:30")] == [
        90, 45, 90, 2880, 1590, 1440,
    ]  # fmt: skip
    for bad in ("soon", "0:30"):
        with pytest.raises(argparse.ArgumentTypeError):
            minutes(bad)


def test_a_jobs_log_has_the_name_submitit_gives_it(tmp_path: Path) -> None:
    paths = submitit.core.utils.JobPaths(tmp_path, job_id="4711", task_id=0)
    assert job_log(tmp_path, "4711") == paths.stdout
