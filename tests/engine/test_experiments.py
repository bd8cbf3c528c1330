"""The experiment runner: plans, splits, a tiny study run sequentially, in 2 processes and on a local
Ray instance with identical results, resume, failed runs, the tables and figure, the command line."""

import csv
import re
import signal
import textwrap

import numpy as np
import pytest
from scipy import stats as scipy_stats

from engine.cli import main
from engine.datasets import Track
from engine.errors import ConfigError, DatasetError
from engine.experiments import run as run_module
from engine.experiments.plan import load_plan, plan_from_dict
from engine.experiments.runner import run_study
from engine.experiments.splits import fold_groups, group_of, hold_out, run_splits
from engine.experiments.store import StudyStore
from tests.synth import write_song

TINY_PLAN = """
name = "tiny"
repetitions = 2
gains = [-12, 0]
[data]
kind = "folder"
path = "songs"
valid_fraction = 0.25
test_fraction = 0.25
[train]
updates = 4
batch_size = 8
validate_every = 0
checkpoint_every = 0
[model]
conv_channels = [4, 4, 8, 4]
dense_units = [16, 8]
[[variant]]
name = "pitch and filter"
key = "pf"
augment = "pitch=0.2,filter=10"
"""


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    for i in range(8):
        write_song(root / "songs" / f"song{i}.wav", 3.0, [(0.4 + 0.1 * i, 2.2)], seed=i)
    (root / "plan.toml").write_text(TINY_PLAN)
    return root


def test_a_plan_reads_with_defaults_grid_and_an_automatic_baseline(tmp_path):
    (tmp_path / "plan.toml").write_text(textwrap.dedent("""
        [data]
        path = "music"
        [grid]
        pitch = [0.1, 0.3]
        filter = [10]
        [[variant]]
        augment = "paper"
    """))
    plan = load_plan(tmp_path / "plan.toml")
    assert plan.repetitions == 5 and plan.tta and plan.threshold == "validation"
    assert plan.data.path == (tmp_path / "music").resolve() and plan.data.kind == "folder"
    assert [v.key for v in plan.variants] == ["none", "pitch-30-stretch-30-filter-10-db", "pitch-0.1", "pitch-0.3",
                                              "filter-10"]
    assert plan.baseline.name == "no augmentation" and plan.variants[2].name == "pitch ±10 %"
    assert plan.train.updates == 40_000  # the paper's protocol unless the plan says otherwise
    runs = plan.runs()
    assert len(runs) == 5 * 5 and runs[0].run_id == "none/rep1" and runs[5].run_id == "none/rep2"
    assert {r.seed for r in runs if r.repetition == 3} == {2}
    # the fingerprint follows what a result depends on
    assert plan.fingerprint(runs[0]) != plan.fingerprint(runs[1]) != plan.fingerprint(runs[5])
    other = plan_from_dict({"data": {"path": str(tmp_path / "music")}, "train": {"updates": 10}})
    assert other.fingerprint(other.runs()[0]) != plan.fingerprint(runs[0])


@pytest.mark.parametrize("text, message", [
    ('[data]\npath = "x"\nkind = "csv"', "data.kind must be one of"),
    ('repetitions = 0\n[data]\npath = "x"', "repetitions must be a whole number >= 1"),
    ('[data]\npath = "x"\n[train]\nupdates = -3', "updates must be positive"),
    ('[data]\npath = "x"\n[[variant]]\naugment = "pitch=2"', "max_pitch must be in [0, 1)"),
    ('[data]\npath = "x"\n[grid]\nwobble = [1]', "'wobble' is not an augmentation"),
    ('[data]\npath = "x"\n[[variant]]\naugment = "none"\n[[variant]]\naugment = "off"\nkey = "b"',
     "more than one variant without augmentation"),
    ('[data]\npath = "x"\n[grid]\npitch = [0.1, 0.1]', "variant keys must be unique"),
    ('[data]\npath = "x"\nvalid_fraction = 0', "data.valid_fraction must be > 0"),
    ('colour = 1\n[data]\npath = "x"', "unknown key(s) in plan: colour"),
    ('[data]\npath = "x"\nvalid_fraction = 0.5\ntest_fraction = 0.5', "must leave files for training"),
    ('[data]\npath = "x"\ngroup = "("', "not a regular expression"),
    ('name = "a"\n[data', "is not valid TOML"),
    ('name = "a"', "a [data] table"),
    ('gains = [-18, 90]\n[data]\npath = "x"', "gains: 90 dB is out of range (±60 dB)"),
    ('gains = [0, 0]\n[data]\npath = "x"', "gains: 0 dB is listed twice"),
    ('gains = "loud"\n[data]\npath = "x"', "gains must be a list of numbers of dB"),
])
def test_a_bad_plan_is_a_clear_error(tmp_path, text, message):
    (tmp_path / "plan.toml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_plan(tmp_path / "plan.toml")


def test_a_missing_plan_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="plan file not found"):
        load_plan(tmp_path / "nope.toml")


def tracks(names):
    return [Track(n, f"/a/{n}.wav", f"/a/{n}.lab") for n in names]


def test_held_out_groups_stay_together_and_do_not_depend_on_order():
    names = [f"song{i}" for i in range(10)] + [f"song{i} (accompaniment)" for i in range(10)]
    pattern = r" \(accompaniment\)$"
    rest, held = hold_out(tracks(names), 0.2, seed=3, pattern=pattern)
    assert len(held) == 4 and len(rest) == 16
    assert {group_of(t, pattern) for t in held}.isdisjoint({group_of(t, pattern) for t in rest})
    again = hold_out(tracks(reversed(names)), 0.2, seed=3, pattern=pattern)
    assert [t.name for t in again[1]] == [t.name for t in held]
    assert [t.name for t in hold_out(tracks(names), 0.2, seed=4, pattern=pattern)[1]] != [t.name for t in held]


def test_k_folds_test_every_group_once():
    groups = [f"g{i}" for i in range(11)]
    folds = fold_groups(groups, 5, seed=0)
    assert sorted(len(f) for f in folds) == [2, 2, 2, 2, 3]
    assert set().union(*folds) == set(groups) and sum(map(len, folds)) == 11
    with pytest.raises(DatasetError, match="needs at least 5 groups"):
        fold_groups(groups[:3], 5, seed=0)


def test_k_fold_splits_from_the_plan_and_from_fold_lists(songs, tmp_path):
    plan = plan_from_dict({"data": {"kind": "kfold", "path": str(songs / "songs"), "folds": 4,
                                    "valid_fraction": 0.2}})
    assert plan.data.n_folds == 4 and len(plan.runs()) == 5 * 4 and plan.runs()[1].run_id == "none/rep1/fold2"
    tested = []
    for fold in range(4):
        s = run_splits(plan.data, fold)
        names = [t.name for t in s.train], [t.name for t in s.valid], [t.name for t in s.test]
        assert len(set().union(*map(set, names))) == 8 and sum(map(len, names)) == 8  # disjoint, complete
        assert len(s.valid) >= 1 and len(s.test) == 2
        tested += names[2]
    assert sorted(tested) == [f"song{i}" for i in range(8)]
    lists = []
    for k, members in enumerate((["song0", "song1", "song2"], ["song3", "song4.wav"], ["song5", "song6", "song7"])):
        lists.append(tmp_path / f"fold{k}.txt")
        lists[-1].write_text("\n".join(members) + "\n")
    listed = plan_from_dict({"data": {"kind": "kfold", "path": str(songs / "songs"),
                                      "fold_lists": [str(p) for p in lists]}})
    assert listed.data.n_folds == 3
    assert sorted(t.name for t in run_splits(listed.data, 1).test) == ["song3", "song4"]
    lists[0].write_text("song0\nsong99\n")
    with pytest.raises(DatasetError, match="not in the data"):
        run_splits(listed.data, 0)


def run_records(out):
    plan = load_plan(out.parent / "plan.toml")
    return {run.run_id: StudyStore(out).record(run) for run in plan.runs()}


def comparable(record):
    return {k: record[k] for k in ("run_id", "seed", "evaluations", "files", "status")}


@pytest.fixture(scope="module")
def sequential_study(songs):
    out = songs / "sequential"
    result = run_study(load_plan(songs / "plan.toml"), out, threads=1)
    return out, result


def test_a_tiny_study_runs_and_writes_models_records_tables_and_figure(sequential_study):
    out, result = sequential_study
    assert result.finished == ["none/rep1", "pf/rep1", "none/rep2", "pf/rep2"] and not result.failed
    records = run_records(out)
    for run_id, record in records.items():
        assert record["status"] == "ok" and record["threads"] == 1
        assert set(record["evaluations"]) == {"plain", "tta"}
        ev = record["evaluations"]["plain"]
        assert 0 <= ev["threshold"] <= 1 and ev["test"]["tp"] + ev["test"]["fn"] > 0
        assert len(record["files"]["test"]) == 2 and len(record["files"]["valid"]) == 2
        assert (StudyStore(out).run_dir(run_id) / "model.safetensors").stat().st_size > 1000
        # every gain scored at the validation threshold; at 0 dB that is the plain test figure itself
        gains = record["gains"]
        assert gains["threshold"] == ev["threshold"] and [g["gain_db"] for g in gains["levels"]] == [-12, 0]
        assert gains["levels"][1]["error"] == pytest.approx(ev["test"]["error"])
        assert gains["error_spread"] == pytest.approx(abs(gains["levels"][0]["error"] - gains["levels"][1]["error"]))
    assert records["none/rep1"]["seed"] == records["pf/rep1"]["seed"] == 0 and records["pf/rep2"]["seed"] == 1
    for name in ("results.csv", "results.md", "table1.md", "figure2.png", "figure2.svg",
                 "gains.csv", "gains.md", "figure3.png", "figure3.svg"):
        assert result.reports[name].stat().st_size > 100
    assert (out / "plan.toml").read_text() == TINY_PLAN


def test_the_confidence_interval_in_the_table_matches_a_direct_computation(sequential_study):
    out, _ = sequential_study
    records = run_records(out)
    with open(out / "results.csv", newline="") as handle:
        rows = {(r["variant_key"], r["test_mode"]): r for r in csv.DictReader(handle)}
    assert set(rows) == {("none", "plain"), ("pf", "plain"), ("none", "tta"), ("pf", "tta")}
    for (key, mode), row in rows.items():
        errors = []
        for rep in (1, 2):
            c = records[f"{key}/rep{rep}"]["evaluations"][mode]["test"]
            errors.append((c["fp"] + c["fn"]) / (c["tp"] + c["fp"] + c["tn"] + c["fn"]))
        half = scipy_stats.t.ppf(0.975, 1) * np.std(errors, ddof=1) / np.sqrt(2)
        assert float(row["error_mean"]) == pytest.approx(np.mean(errors), abs=1e-12)
        assert float(row["error_ci_low"]) == pytest.approx(np.mean(errors) - half, abs=1e-12)
        assert float(row["error_ci_high"]) == pytest.approx(np.mean(errors) + half, abs=1e-12)
    base = float(rows[("none", "plain")]["error_mean"])
    assert float(rows[("pf", "plain")]["relative_change"]) == pytest.approx(
        float(rows[("pf", "plain")]["error_mean"]) / base - 1)


def test_the_gains_table_matches_a_direct_computation_from_the_records(sequential_study):
    out, _ = sequential_study
    records = run_records(out)
    with open(out / "gains.csv", newline="") as handle:
        rows = {r["variant_key"]: r for r in csv.DictReader(handle)}
    assert list(rows) == ["none", "pf"] and rows["none"]["baseline"] == "True"
    for key, row in rows.items():
        runs = [records[f"{key}/rep{rep}"]["gains"] for rep in (1, 2)]
        assert row["n"] == "2" and row["repetitions"] == "1;2" and row["missing_runs"] == ""
        for i, gain in enumerate(("-12db", "0db")):
            errors = [g["levels"][i]["error"] for g in runs]
            half = scipy_stats.t.ppf(0.975, 1) * np.std(errors, ddof=1) / np.sqrt(2)
            assert float(row[f"error_mean_{gain}"]) == pytest.approx(np.mean(errors), abs=1e-12)
            assert float(row[f"error_ci_low_{gain}"]) == pytest.approx(np.mean(errors) - half, abs=1e-12)
            assert float(row[f"error_ci_high_{gain}"]) == pytest.approx(np.mean(errors) + half, abs=1e-12)
            assert float(row[f"recall_mean_{gain}"]) == pytest.approx(np.mean([g["levels"][i]["recall"] for g in runs]))
        spreads = [g["error_spread"] for g in runs]
        half = scipy_stats.t.ppf(0.975, 1) * np.std(spreads, ddof=1) / np.sqrt(2)
        assert float(row["spread_mean"]) == pytest.approx(np.mean(spreads), abs=1e-12)
        assert float(row["spread_ci_high"]) == pytest.approx(np.mean(spreads) + half, abs=1e-12)
    table = (out / "gains.md").read_text()
    assert "| variant | n | −12 dB | 0 dB | spread (worst − best) | recall −12 dB → 0 dB |" in table
    mean, ci = 100 * float(rows["pf"]["error_mean_0db"]), 50 * (float(rows["pf"]["error_ci_high_0db"])
                                                                 - float(rows["pf"]["error_ci_low_0db"]))
    assert "| pitch and filter | 2 | " in table and f"{mean:.1f} ± {ci:.1f} %" in table
    assert "chosen on the validation files at 0 dB" in table and "Incomplete study" not in table


def test_the_gains_report_of_a_study_in_progress_names_the_missing_runs(sequential_study, tmp_path):
    from engine.experiments.gains_report import summarize_gains, write_gains_report
    out, _ = sequential_study
    plan = load_plan(out.parent / "plan.toml")
    records = [r for run_id, r in run_records(out).items() if run_id != "pf/rep2"]
    rows = summarize_gains(records, planned=plan.runs())
    assert [(r.variant_key, r.n, r.missing_runs) for r in rows] == [("none", 2, ()), ("pf", 1, ("pf/rep2",))]
    assert rows[1].cells[0].error_mean == records[1]["gains"]["levels"][0]["error"]  # n = 1: the run itself
    write_gains_report(records, tmp_path, planned=plan.runs())
    table = (tmp_path / "gains.md").read_text()
    assert "Incomplete study: 1 planned run(s)" in table and "pitch and filter: pf/rep2" in table
    assert "n per variant (repetitions of 2 planned): no augmentation 2, pitch and filter 1." in table
    baseline_only = [r for r in records if r["variant_key"] == "none"]
    write_gains_report(baseline_only, tmp_path, planned=plan.runs())
    table = (tmp_path / "gains.md").read_text()
    assert "| pitch and filter | 0 | not run yet |" in table and "every run of pitch and filter." in table


def test_gains_pool_over_folds_by_frames_voiced_and_unvoiced_counts(sequential_study):
    from engine.experiments.gains_report import summarize_gains
    out, _ = sequential_study
    records = run_records(out)
    folds = [{**records[f"none/rep{rep}"], "repetition": 1, "fold": rep - 1} for rep in (1, 2)]
    (row,) = summarize_gains(folds, n_folds=2)
    assert row.n == 1 and summarize_gains(folds[:1], n_folds=2)[0].n == 0  # a fold missing: left out
    for i, cell in enumerate(row.cells):
        levels = [f["gains"]["levels"][i] for f in folds]
        voiced = [f["evaluations"]["plain"]["test"]["tp"] + f["evaluations"]["plain"]["test"]["fn"] for f in folds]
        frames = [lv["n_frames"] for lv in levels]
        assert cell.error_mean == pytest.approx(np.average([lv["error"] for lv in levels], weights=frames))
        assert cell.recall_mean == pytest.approx(np.average([lv["recall"] for lv in levels], weights=voiced))


def test_figure3_is_deterministic_and_no_gains_write_no_gains_files(songs, sequential_study, tmp_path):
    from engine.experiments.runner import report_study
    out, _ = sequential_study
    before = {name: (out / name).read_bytes() for name in ("figure3.png", "figure3.svg", "gains.csv", "gains.md")}
    assert before["figure3.png"].startswith(b"\x89PNG") and b"<svg" in before["figure3.svg"]
    report_study(load_plan(songs / "plan.toml"), out)
    assert {name: (out / name).read_bytes() for name in before} == before
    from engine.experiments.report import write_report
    without = [{k: v for k, v in r.items() if k != "gains"} for r in run_records(out).values()]
    written = write_report(without, tmp_path)
    assert "results.md" in written and not set(written) & {"gains.csv", "gains.md", "figure3.png", "figure3.svg"}
    assert not list(tmp_path.glob("gains.*")) and not list(tmp_path.glob("figure3.*"))


def test_two_processes_give_the_same_results_as_one(songs, sequential_study):
    out = songs / "processes"
    events = []
    result = run_study(load_plan(songs / "plan.toml"), out, workers=2, threads=1, on_event=events.append)
    assert sorted(result.finished) == sorted(sequential_study[1].finished)
    # the workers' training progress reaches the parent, per run, in order
    updates: dict[str, list[int]] = {}
    for event in events:
        if event.kind == "progress":
            updates.setdefault(event.run.run_id, []).append(event.progress.update)
    assert set(updates) == set(result.finished)
    assert all(u == [1, 2, 3, 4, 4] for u in updates.values()), updates  # 4 updates, then the finished one
    expected = run_records(sequential_study[0])
    assert {k: comparable(r) for k, r in run_records(out).items()} == {k: comparable(r) for k, r in expected.items()}


@pytest.mark.slow  # starts a local Ray instance
def test_a_local_ray_instance_gives_the_same_results(songs, sequential_study):
    pytest.importorskip("ray")
    out = songs / "ray"
    events = []
    sigterm_handler = signal.getsignal(signal.SIGTERM)
    result = run_study(load_plan(songs / "plan.toml"), out, ray_address="local", threads=1, on_event=events.append)
    assert signal.getsignal(signal.SIGTERM) is sigterm_handler  # ray.init's own handler does not stay behind
    assert not result.failed and len(result.finished) == 4
    assert [e.kind for e in events].count("queued") == 4
    expected = run_records(sequential_study[0])
    assert {k: comparable(r) for k, r in run_records(out).items()} == {k: comparable(r) for k, r in expected.items()}


def test_resume_skips_finished_runs_and_a_failed_run_is_recorded_then_run_again(songs, monkeypatch, capsys):
    out = songs / "resume"
    plan = load_plan(songs / "plan.toml")
    real = run_module.execute_run

    def flaky(plan, run, **kwargs):
        if run.run_id == "pf/rep1":
            raise MemoryError("out of memory (simulated)")
        return real(plan, run, **kwargs)
    monkeypatch.setattr(run_module, "execute_run", flaky)
    first = run_study(plan, out, threads=1)
    assert first.failed == ["pf/rep1"] and len(first.finished) == 3
    failed = StudyStore(out).record(plan.runs()[1])
    assert failed["status"] == "failed" and "out of memory (simulated)" in failed["error"]
    assert "MemoryError" in failed["traceback"]
    rows = list(csv.DictReader(open(out / "results.csv", newline="")))
    assert {(r["variant_key"], r["test_mode"], r["n"]) for r in rows} >= {("none", "plain", "2"), ("pf", "plain", "1")}

    monkeypatch.setattr(run_module, "execute_run", real)
    calls = []
    monkeypatch.setattr(run_module, "execute_run", lambda plan, run, **kw: calls.append(run.run_id) or real(plan, run, **kw))
    stamp = (StudyStore(out).run_dir("none/rep1") / "record.json").stat().st_mtime_ns
    second = run_study(plan, out, threads=1)
    assert calls == ["pf/rep1"] and second.finished == ["pf/rep1"] and len(second.skipped) == 3
    assert (StudyStore(out).run_dir("none/rep1") / "record.json").stat().st_mtime_ns == stamp
    assert all(r["status"] == "ok" for r in run_records(out).values())
    # other settings make the finished runs stale: they run again
    changed = plan_from_dict({**_toml(songs / "plan.toml"), "repetitions": 1}, base=songs)
    assert run_study(changed, out, threads=1).skipped == ["none/rep1", "pf/rep1"]
    longer = plan_from_dict({**_toml(songs / "plan.toml"), "train": {**_toml(songs / "plan.toml")["train"],
                                                                       "updates": 5}}, base=songs)
    calls.clear()
    run_study(longer, out, threads=1)
    assert len(calls) == 4


def _toml(path):
    import tomllib
    return tomllib.loads(path.read_text())


def test_the_command_line_lists_runs_runs_a_study_and_reports(songs, capsys):
    out = songs / "cli"
    assert main(["experiment", str(songs / "plan.toml"), "--out", str(out), "--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert "4 runs of 4 updates" in listing and "pf/rep2" in listing and "to run" in listing
    assert main(["experiment", str(songs / "plan.toml"), "--out", str(out), "--threads", "1"]) == 0
    shown = capsys.readouterr().out
    assert "[4/4] finished" in shown and "| variant | test |" in shown and "figure2.png" in shown
    assert "pf/rep2: update 2/4, loss" in shown  # progress within a run
    assert main(["experiment", str(songs / "plan.toml"), "--out", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("finished") == 4
    (out / "results.md").unlink()
    assert main(["experiment", str(songs / "plan.toml"), "--out", str(out), "--report-only"]) == 0
    assert (out / "results.md").is_file()
    assert main(["experiment", str(songs / "missing.toml")]) != 0
    assert "plan file not found" in capsys.readouterr().err
    assert main(["experiment", str(songs / "plan.toml"), "--out", str(out), "--workers", "0"]) != 0
    assert "workers and threads must be at least 1" in capsys.readouterr().err


def test_a_study_without_ray_installed_says_how_to_get_it(songs, monkeypatch, capsys):
    import builtins
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    code = main(["experiment", str(songs / "plan.toml"), "--out", str(songs / "noray"), "--ray-address", "auto"])
    assert code != 0 and 'pip install ".[cluster]"' in capsys.readouterr().err


@pytest.mark.timeout(120)  # the runs take many minutes: waiting for them instead of ending them times out
def test_stopping_a_study_in_processes_ends_the_runs_in_progress(songs):
    import multiprocessing
    import time

    from engine.experiments.executors import run_in_processes
    long = plan_from_dict({**_toml(songs / "plan.toml"), "train": {**_toml(songs / "plan.toml")["train"],
                                                                     "updates": 100_000}}, base=songs)
    runs = long.runs()[:3]  # runs that would take many minutes each

    class Stop(Exception):
        pass

    started = []

    def on_start(run):
        started.append(run.run_id)
        if len(started) == 2:
            time.sleep(3)  # the first run is under way in its worker
            raise Stop
    with pytest.raises(Stop):
        next(run_in_processes(long, runs, long.fingerprint, workers=2, threads=1, on_start=on_start))
    assert started == ["none/rep1", "pf/rep1"]
    assert not multiprocessing.active_children()  # how soon: bench/wall_clock.py


def test_the_plans_in_the_repository_read():
    from pathlib import Path
    plans = {p.stem: load_plan(p) for p in (Path(__file__).parents[2] / "plans").glob("*.toml")}
    assert set(plans) >= {"musdb7-small", "jamendo-paper", "rwc-kfold"}
    paper = plans["jamendo-paper"]
    assert paper.data.kind == "jamendo" and paper.repetitions == 5 and paper.train.updates == 40_000
    assert len(paper.variants) == 23 and paper.variants[1].augment_config.max_pitch == 0.3
    assert [v.key for v in paper.variants if paper.test_modes(v) == ("plain", "tta")] == ["none", "paper"]
    assert plans["rwc-kfold"].data.n_folds == 5
    small = plans["musdb7-small"]
    assert small.data.group and small.data.extra_train and len(small.runs()) == 6
