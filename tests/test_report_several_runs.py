"""Reports over several runs: a run column, sorted rows, one figure series per run, a figure
folder named for every input, NaN/inf cases marked on figures."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from projbench.report.run_files import (
    _label_runs,
    default_figure_dir,
    print_tables,
    sort_records,
    write_figures,
)
from projbench.results import ResultsWriter, read_runs


def memory_case(D: int, peak: float = 1.0) -> dict:
    return {"key": f"m{D}", "suite": "memory", "projection": "fastjl",
            "params": {"D": D, "d": 100, "dtype": "float32", "device": "cpu"}, "status": "ok",
            "stats": {"D": D, "d": 100, "state_bytes": D * 8, "state_MiB": D * 8 / 2**20,
                      "dense_bytes": D * 400, "dense_MiB": D * 400 / 2**20, "state_fraction": 0.02,
                      "peak_step_bytes": peak * 2**20, "peak_step_MiB": peak, "peak_method": "rss_hwm"}}


def two_runs(tmp_path) -> tuple[list[dict], list[str]]:
    ids = []
    for name, Ds in (("first", (65536, 4096)), ("second", (16384, 4096))):
        with ResultsWriter(tmp_path / f"{name}.jsonl", config={}) as w:
            for D in Ds:
                w.write_case(memory_case(D))
            ids.append(w.run_id)
    runs = read_runs([tmp_path / "first.jsonl", tmp_path / "second.jsonl"])
    records = [c for run in runs for c in run.cases]
    return records, ids


def test_table_has_a_run_column_and_sorted_rows(tmp_path) -> None:
    records, ids = two_runs(tmp_path)
    buf = io.StringIO()
    print_tables(records, Console(file=buf, width=200))
    text = buf.getvalue()
    assert any(" run " in line for line in text.splitlines()[:4])  # the header
    assert ids[0][:8] in text and ids[1][:8] in text
    order = [(r["params"]["D"], r["run_id"]) for r in sort_records(records)]
    assert order == [(4096, ids[0]), (4096, ids[1]), (16384, ids[1]), (65536, ids[0])]  # numeric D
    rows = [line for line in text.splitlines() if "fastjl" in line]
    shown = [int(line.split("D=")[1].split()[0].replace(",", "")) for line in rows]
    assert shown == [4096, 4096, 16384, 65536]


def test_one_run_has_no_run_column(tmp_path) -> None:
    records, ids = two_runs(tmp_path)
    buf = io.StringIO()
    print_tables([r for r in records if r["run_id"] == ids[0]], Console(file=buf, width=200))
    assert ids[0][:8] not in buf.getvalue()


def test_figures_draw_one_series_per_run(tmp_path) -> None:
    records, ids = two_runs(tmp_path)
    labelled = _label_runs(records)
    assert {r["projection"] for r in labelled} == {f"fastjl @{ids[0][:6]}", f"fastjl @{ids[1][:6]}"}
    assert all(r["projection"] == "fastjl" for r in records)  # the input is not modified
    from projbench.metrics.memory import MemorySuite

    fig = MemorySuite().figure(labelled)
    state_lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label().endswith(" state")]
    assert len(state_lines) == 2
    for line in state_lines:  # no line joins points of both runs
        assert sorted(line.get_xdata()) in ([4096, 65536], [4096, 16384])


def test_figure_folder_is_named_for_every_input(tmp_path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "sub" / "b.jsonl"
    assert default_figure_dir([a]) == tmp_path / "a-figures"
    assert default_figure_dir([a, b]) == tmp_path / "a+b-figures"
    many = [tmp_path / f"r{i}.jsonl" for i in range(5)]
    name = default_figure_dir(many).name
    assert name.startswith("r0+r1+") and "5-runs" in name
    assert default_figure_dir(many) != default_figure_dir(many[:4])


def test_figures_mark_nonfinite_cases(tmp_path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    texts: list[str] = []
    original = Figure.savefig

    def spy(self, *args, **kwargs):
        texts.extend(t.get_text() for t in self.texts)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    path = tmp_path / "r.jsonl"
    with ResultsWriter(path, config={}) as w:
        w.write_case(memory_case(4096))
        w.write_case(memory_case(16384, peak=float("nan")))
    records = read_runs([path])[0].cases
    assert isinstance(records[1]["stats"]["peak_step_MiB"], float)  # NaN back as a float
    pngs = write_figures(records, tmp_path / "figs")
    assert [Path(p).name for p in pngs] == ["memory.png"]
    assert any("1 case(s) with NaN/inf values are not drawn" in t for t in texts)
