"""spkid.console: a bar on a terminal only (tqdm's rule, TQDM_DISABLE honoured), plain lines
with time and rate elsewhere, and a step's output copied into its log without a bar's redraws."""

import io
import re
import sys

import pytest

from spkid import console
from spkid.errors import SpkidError


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def every_tenth(monkeypatch):
    """Plain lines at each tenth however fast the work goes."""
    monkeypatch.setattr(console, "PLAIN_MIN_SECONDS", 0.0)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def test_a_log_gets_one_plain_line_per_tenth_with_time_and_rate(every_tenth):
    out = io.StringIO()
    for _ in console.progress(range(1000), desc="extract data/test", unit="utt", file=out):
        pass
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10  # 10%, 20%, ... 100%; the end adds none when 100% was shown
    assert re.fullmatch(r"extract data/test: 10% \(100/1000 utt\), 00:00, [\d.e+]+ utt/s", lines[0])
    assert lines[-1].startswith("extract data/test: 100% (1000/1000 utt)")


def test_lines_no_more_often_than_the_minimum_interval(monkeypatch):
    """A fast set in a log: no line per tenth, one at the end (with the rate)."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    out = io.StringIO()
    with console.progress(total=50, desc="score", unit="list", file=out) as bar:
        for _ in range(50):
            bar.update(1)
    assert out.getvalue().count("\n") == 1 and out.getvalue().startswith("score: 100% (50/50 list)")


def test_unknown_total_bytes_postfix_and_no_final_line(every_tenth, monkeypatch):
    monkeypatch.setattr(console, "PLAIN_UNKNOWN_SECONDS", 0.0)
    out = io.StringIO()
    bar = console.progress(desc="avg_model.pt", unit="B", unit_scale=True, file=out, initial=1024)
    bar.update(2 * 1024 ** 2)
    bar.set_postfix(loss="1.25", acc="50%")
    bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("avg_model.pt: 2.10MB, 00:00, ") and lines[0].endswith("B/s")
    assert lines[1].endswith(", loss=1.25, acc=50%") and len(lines) == 2
    out = io.StringIO()
    with console.progress(total=4, desc="epoch 1/2", unit="batch", file=out, final_line=False) as bar:
        bar.update(1)
    assert out.getvalue().count("\n") == 1  # 25%, and no closing line (the caller prints the epoch's)


def test_a_terminal_gets_a_bar_unless_tqdm_disable(every_tenth, monkeypatch):
    term = Terminal()
    with console.progress(total=3, desc="extract", file=term) as bar:
        bar.update(3)
    assert "\r" in term.getvalue() and "|" in term.getvalue()  # tqdm's bar
    for value in ("1", "true"):
        monkeypatch.setenv("TQDM_DISABLE", value)
        term = Terminal()
        with console.progress(total=3, desc="extract", file=term) as bar:
            bar.update(3)
        assert "\r" not in term.getvalue() and term.getvalue().startswith("extract: 100%")
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert not isinstance(console.progress(total=1, file=Terminal()), console.PlainProgress)


def test_quiet_shows_nothing_anywhere(every_tenth):
    for stream in (io.StringIO(), Terminal()):
        assert list(console.progress(range(5), quiet=True, file=stream)) == list(range(5))
        assert stream.getvalue() == ""


def test_step_log_copies_the_output_without_redraws(tmp_path, capsys):
    log = tmp_path / "exp" / "S" / "log" / "score.vox1.log"
    with console.step_log(log, ["exp/S", "data/vox1"]):
        print("vox1_O: EER 1.000% MinDCF(p=0.05) 0.1000")
        sys.stderr.write("\rbar 50%|#####")
        print("a warning", file=sys.stderr)
    text = log.read_text()
    assert "\r" not in text
    lines = text.splitlines()
    assert re.fullmatch(r"# \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ exp/S data/vox1", lines[0])
    assert lines[1:3] == ["vox1_O: EER 1.000% MinDCF(p=0.05) 0.1000", "a warning"]
    assert re.fullmatch(r"# done in [\d.]+ s", lines[3])
    assert "\rbar 50%" in capsys.readouterr().err  # the terminal still gets it
    with pytest.raises(SpkidError):
        with console.step_log(log, ["again"]):
            raise SpkidError("data/vox1/trials/x: line 3: 2 fields")
    assert re.search(r"# failed after [\d.]+ s: data/vox1/trials/x: line 3: 2 fields\n$", log.read_text())
    assert log.read_text().count("# 20") == 2  # appended, one header per run
