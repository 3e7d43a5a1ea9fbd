"""available_cpus: the process's affinity, capped by its cgroup CPU quota (v2 and v1)."""

import os

import pytest

import astro_cl.utils.cpus as cpus


def available_cpus():
    # through the module the fixture patches
    return cpus.available_cpus()


@pytest.fixture
def fake_system(tmp_path, monkeypatch):
    """A fake /sys/fs/cgroup and /proc/self/cgroup, and an affinity of 8 CPUs."""
    root = tmp_path / "cgroup"
    root.mkdir()
    proc = tmp_path / "proc_self_cgroup"
    monkeypatch.setattr(cpus, "_CGROUP_ROOT", root)
    monkeypatch.setattr(cpus, "_PROC_SELF_CGROUP", proc)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    return root, proc


def test_affinity_without_cgroup_limit(fake_system):
    assert available_cpus() == 8


def test_affinity_smaller_than_machine(fake_system, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert available_cpus() == 1


def test_cgroup_v2_quota_rounded_up(fake_system):
    root, proc = fake_system
    proc.write_text("0::/job/step\n")
    (root / "job" / "step").mkdir(parents=True)
    (root / "job" / "step" / "cpu.max").write_text("250000 100000\n")
    assert available_cpus() == 3  # 2.5 CPUs
    # an ancestor's tighter limit applies as well
    (root / "job" / "cpu.max").write_text("150000 100000\n")
    assert available_cpus() == 2
    (root / "job" / "cpu.max").write_text("max 100000\n")
    (root / "job" / "step" / "cpu.max").write_text("max 100000\n")
    assert available_cpus() == 8


def test_cgroup_v2_inside_a_container(fake_system):
    # the host's path is not mounted in the container: its own cgroup is the root
    root, proc = fake_system
    proc.write_text("0::/kubepods/pod1/abc\n")
    (root / "cpu.max").write_text("100000 100000\n")
    assert available_cpus() == 1


def test_cgroup_v1_quota(fake_system):
    root, proc = fake_system
    proc.write_text("4:memory:/x\n3:cpu,cpuacct:/slurm/job7\n0::/\n")
    job = root / "cpu,cpuacct" / "slurm" / "job7"
    job.mkdir(parents=True)
    (job / "cpu.cfs_quota_us").write_text("400000\n")
    (job / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus() == 4
    (job / "cpu.cfs_quota_us").write_text("-1\n")  # no limit
    assert available_cpus() == 8


def test_quota_never_below_one_and_garbage_ignored(fake_system):
    root, proc = fake_system
    proc.write_text("0::/\n")
    (root / "cpu.max").write_text("1000 100000\n")  # 0.01 CPU
    assert available_cpus() == 1
    (root / "cpu.max").write_text("not a quota\n")
    assert available_cpus() == 8


def test_without_affinity_uses_cpu_count(fake_system, monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert available_cpus() == 6


def test_default_thread_count_of_training_uses_it(monkeypatch):
    from astro_cl.training import trainer

    monkeypatch.setattr(cpus, "available_cpus", lambda: 6)
    assert trainer.default_num_threads() == 6
    assert trainer.default_num_threads(processes_per_node=4) == 1


def test_real_machine():
    from astro_cl.utils import available_cpus as public

    n = public()
    assert 1 <= n <= (os.cpu_count() or n)
