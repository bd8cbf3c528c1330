"""Statistics over repeated runs and the study's tables and figure (engine.experiments)."""

import csv
import math

import pytest
from scipy import stats

from engine.experiments.report import markdown_table, plot_figure2, write_report, write_table1, write_tables
from engine.experiments.stats import mean_ci, summarize

N_FRAMES = 10_000


def counts(error, *, voiced=5_000, n=N_FRAMES):
    """Counts with the given error, split evenly between misses and false alarms."""
    wrong = round(n * error)
    fn = wrong // 2
    fp = wrong - fn
    return {"tp": voiced - fn, "fn": fn, "tn": n - voiced - fp, "fp": fp, "error": -1.0}  # stale extra key


def evaluation(error, oracle_error=None):
    oracle_error = error if oracle_error is None else oracle_error
    return {"threshold": 0.5, "valid": counts(error), "test": counts(error),
            "oracle_threshold": 0.4, "test_oracle": counts(oracle_error)}


def record(key, repetition, error, *, fold=0, baseline=False, tta=None, oracle=None, status="ok", name=None):
    evaluations = {"plain": evaluation(error, oracle)}
    if tta is not None:
        evaluations["tta"] = evaluation(tta)
    return {"run_id": f"{key}/rep{repetition}/fold{fold}", "variant": name or key, "variant_key": key,
            "baseline": baseline, "repetition": repetition, "fold": fold, "seed": repetition,
            "augment": "none" if baseline else key, "updates": 100, "status": status,
            "evaluations": evaluations}


def study():
    """Baseline (10 % error, TTA 9 %) and pitch (8 % error) over three repetitions."""
    records = []
    for rep, jitter in enumerate((-0.01, 0.0, 0.01)):
        records.append(record("none", rep, 0.10 + jitter, baseline=True, tta=0.09 + jitter,
                              name="no augmentation"))
        records.append(record("pitch-30", rep, 0.08 + jitter, name="pitch ±30 %"))
    return records


def by_label(rows):
    return {row.label: row for row in rows}


# --- mean_ci --------------------------------------------------------------------------------------

def test_mean_ci_hand_computed():
    mean, low, high = mean_ci([0.1, 0.2, 0.3])
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert mean == pytest.approx(0.2)
    assert (low, high) == pytest.approx((0.2 - half, 0.2 + half))


def test_mean_ci_matches_scipy_t():
    values = [0.081, 0.077, 0.09, 0.084, 0.079]
    mean, low, high = mean_ci(values, confidence=0.9)
    expected = stats.t.interval(0.9, len(values) - 1, loc=sum(values) / 5, scale=stats.sem(values))
    assert mean == pytest.approx(sum(values) / 5)
    assert (low, high) == pytest.approx(expected)


def test_mean_ci_of_one_and_no_value():
    assert mean_ci([0.3])[0] == 0.3 and all(math.isnan(v) for v in mean_ci([0.3])[1:])
    assert all(math.isnan(v) for v in mean_ci([]))


# --- summarize ------------------------------------------------------------------------------------

def test_rows_order_labels_and_relative_change():
    rows = summarize(study())
    assert [r.label for r in rows] == ["no augmentation", "pitch ±30 %", "no augmentation + TTA"]
    base, pitch, tta = rows
    assert base.n == 3 and base.errors == pytest.approx((0.09, 0.10, 0.11))
    assert base.error_mean == pytest.approx(0.10)
    assert base.relative_change == 0.0
    assert pitch.relative_change == pytest.approx(-0.2)
    assert tta.relative_change == pytest.approx(-0.1)  # TTA's effect on the baseline
    assert base.recall_mean == pytest.approx(0.90) and base.specificity_mean == pytest.approx(0.90)


def test_folds_are_pooled_and_incomplete_repetitions_left_out():
    # Repetition 0: folds with 10 % and 30 % error on equal frame counts -> 20 % pooled.
    records = [record("none", 0, 0.10, fold=0, baseline=True), record("none", 0, 0.30, fold=1, baseline=True),
               record("none", 1, 0.20, fold=0, baseline=True), record("none", 1, 0.40, fold=1, baseline=True),
               record("none", 2, 0.50, fold=0, baseline=True)]  # fold 1 missing
    (row,) = summarize(records, n_folds=2)
    assert row.errors == pytest.approx((0.20, 0.30))
    assert row.repetitions == (0, 1)
    assert row.incomplete_repetitions == (2,)
    assert row.n == 2


def test_pooling_weights_folds_by_their_frame_counts():
    small = record("none", 0, 0.0, fold=0, baseline=True)
    small["evaluations"]["plain"]["test"] = {"tp": 50, "fn": 0, "tn": 40, "fp": 10}  # 10 % of 100 frames
    large = record("none", 0, 0.0, fold=1, baseline=True)
    large["evaluations"]["plain"]["test"] = {"tp": 500, "fn": 0, "tn": 500, "fp": 0}  # 0 % of 1000 frames
    (row,) = summarize([small, large], n_folds=2)
    assert row.errors == pytest.approx((10 / 1100,))


def test_threshold_rule_picks_the_counts():
    records = [record("none", rep, 0.10, oracle=0.07, baseline=True) for rep in range(2)]
    validation, = summarize(records)
    oracle, = summarize(records, threshold="oracle")
    assert validation.error_mean == pytest.approx(0.10)
    assert validation.oracle_error_mean == pytest.approx(0.07)
    assert oracle.error_mean == pytest.approx(0.07)
    assert oracle.threshold_rule == "oracle"


def test_failed_records_are_ignored():
    records = study() + [record("pitch-30", 3, 0.5, status="failed"),
                         record("broken", 0, 0.5, status="failed")]
    rows = summarize(records)
    assert by_label(rows)["pitch ±30 %"].n == 3
    assert "broken" not in {r.variant_key for r in rows}


def test_no_usable_records_is_an_error():
    with pytest.raises(ValueError, match="no usable run records"):
        summarize([record("none", 0, 0.1, baseline=True, status="failed")])
    with pytest.raises(ValueError, match="threshold"):
        summarize(study(), threshold="test")


def test_no_baseline_leaves_relative_change_undefined():
    rows = summarize([record("pitch-30", rep, 0.08) for rep in range(2)])
    assert math.isnan(rows[0].relative_change)


def test_baseline_comes_first_whatever_the_record_order():
    rows = summarize(list(reversed(study())))
    assert rows[0].baseline and rows[0].test_mode == "plain"


# --- tables and figure ----------------------------------------------------------------------------

def test_results_csv_reads_back(tmp_path):
    rows = summarize(study())
    csv_path, md_path = write_tables(rows, tmp_path)
    with open(csv_path, newline="", encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))
    assert [line["label"] for line in lines] == [r.label for r in rows]
    pitch = lines[1]
    assert float(pitch["error_mean"]) == rows[1].error_mean  # full precision
    assert float(pitch["relative_change"]) == pytest.approx(-0.2)
    assert [float(v) for v in pitch["errors"].split(";")] == pytest.approx([0.07, 0.08, 0.09])
    assert float(pitch["error_ci_low"]) == pytest.approx(mean_ci([0.07, 0.08, 0.09])[1])
    assert int(pitch["n"]) == 3
    text = md_path.read_text(encoding="utf-8")
    assert "| pitch ±30 % | plain | 3 | 8.00 ± 2.48 % | -20.0 % | 92.0 % | 92.0 % |" in text
    assert "reference" in text and "-10.0 %" in text
    assert markdown_table(rows) in text


def test_incomplete_repetitions_are_noted(tmp_path):
    records = [dict(r, fold=fold, run_id=f"{r['run_id']}/fold{fold}") for r in study() for fold in (0, 1)]
    records.append(record("pitch-30", 3, 0.5, fold=0))  # its fold 1 never finished
    rows = summarize(records, n_folds=2)
    write_tables(rows, tmp_path)
    assert "pitch ±30 %: repetition(s) 3 left out" in (tmp_path / "results.md").read_text(encoding="utf-8")


def test_table1_rows_and_not_run(tmp_path):
    text = write_table1(summarize(study()), tmp_path).read_text(encoding="utf-8")
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "10.00 %" in lines["w/o augmentation"] and "| 3 |" in lines["w/o augmentation"]
    assert "8.00 %" in lines["train augmentation"]
    assert "9.00 %" in lines["test augmentation"]
    assert "not run" in lines["train/test augmentation"]  # pitch was not evaluated with TTA
    assert "[" in lines["w/o augmentation"]  # the CI of the error


def test_table1_default_picks_the_variant_with_tta(tmp_path):
    records = study() + [record("combo", rep, 0.07, tta=0.065) for rep in range(3)] \
        + [record("filter", rep, 0.09) for rep in range(3)]
    rows = summarize(records)
    text = write_table1(rows, tmp_path).read_text(encoding="utf-8")
    assert "Train augmentation: combo." in text and "not run" not in text
    text = write_table1(rows, tmp_path, combined_key="filter").read_text(encoding="utf-8")
    assert "Train augmentation: filter." in text and "not run" in text
    with pytest.raises(ValueError, match="combined_key"):
        write_table1(rows, tmp_path, combined_key="nope")


def test_figure2_files(tmp_path):
    import matplotlib.image

    records = study() + [record("single", 0, 0.06)]  # n=1: a bar without whiskers
    png, svg = plot_figure2(summarize(records), tmp_path, title="study")
    assert png.name == "figure2.png" and svg.name == "figure2.svg"
    assert png.stat().st_size > 0 and svg.stat().st_size > 0
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert "<svg" in svg.read_text(encoding="utf-8")


def test_write_report_writes_everything(tmp_path):
    paths = write_report(study(), tmp_path / "report", threshold="oracle")
    assert set(paths) == {"results.csv", "results.md", "table1.md", "figure2.png", "figure2.svg"}
    rows = summarize(study(), threshold="oracle")
    with open(paths["results.csv"], newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["variant_key"], r["test_mode"]) for r in table] == [(r.variant_key, r.test_mode) for r in rows]
    assert [float(r["error_mean"]) for r in table] == pytest.approx([r.error_mean for r in rows])
    assert all(r.variant in paths["results.md"].read_text(encoding="utf-8") for r in rows)
    assert "Train augmentation" in paths["table1.md"].read_text(encoding="utf-8")
    import matplotlib.image
    assert matplotlib.image.imread(paths["figure2.png"]).ndim == 3
    assert "<svg" in paths["figure2.svg"].read_text(encoding="utf-8")
    leftovers = [p for p in (tmp_path / "report").iterdir() if p.name.startswith(".")]
    assert not leftovers  # no temporary files
