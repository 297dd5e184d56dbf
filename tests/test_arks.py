import os

import kaldiio
import numpy as np
import pytest

from spkid.data import arks
from spkid.data.arks import ArkError, Table, check_key, set_problem, value_problem
from spkid.data.datadir import DataDirError, read_scp_lines
from spkid.errors import SpkidError
from spkid.eval import scoring
from spkid.eval.extract import write_embeddings


def write_set(d, n=4, crops=3, dim=8, seed=0):
    """A set as stage 4 writes it (write_embeddings): ``d``/embeddings.{ark,scp}; its matrices."""
    rng = np.random.default_rng(seed)
    mats = {f"id{i:05d}/s/{i:05d}": rng.normal(size=(crops, dim)).astype(np.float32) for i in range(n)}
    write_embeddings(sorted(mats.items()), d / "embeddings.ark")
    return d / "embeddings.scp", mats


def offsets(scp):
    return [(utt, offset) for _, utt, _, offset in read_scp_lines(scp)]


def test_reads_what_kaldiio_reads(tmp_path):
    """Matrices and vectors, two arks in one scp, in scp order or not: the values kaldiio gives."""
    scp, mats = write_set(tmp_path / "a")
    vec = {"v/x/1": np.arange(1, 6, dtype=np.float32)}
    kaldiio.save_ark(str(tmp_path / "v.ark"), vec, scp=str(tmp_path / "v.scp"))
    assert dict(Table(tmp_path / "v.scp").read())["v/x/1"].tolist() == [1, 2, 3, 4, 5]
    lines = scp.read_text().splitlines()
    scp.write_text("\n".join(lines[::-1]) + "\n")
    got = dict(Table(scp).read())
    want = dict(kaldiio.load_scp(str(scp)))
    assert sorted(got) == sorted(want) == sorted(mats)
    for utt in mats:
        np.testing.assert_array_equal(got[utt], want[utt])
    assert Table(scp).check(tiled=True) == (3, 8)


@pytest.mark.parametrize("line", ["u touch {p}; cat x |", "u | touch {p}", "u touch {p} |:12", "u -",
                                  "u -:0", "u | touch {p}:0"])
def test_scp_commands_and_stdin_are_refused_by_file_and_line(tmp_path, line):
    scp, _ = write_set(tmp_path)
    pwned = tmp_path / "PWNED"
    scp.write_text(scp.read_text() + line.format(p=pwned) + "\n")
    with pytest.raises(DataDirError, match=rf"{scp}:5: .*(shell command|standard input|expected)"):
        Table(scp)
    assert set_problem(tmp_path / "embeddings.ark", [f"id{i:05d}/s/{i:05d}" for i in range(4)] + ["u"])
    assert not pwned.exists()


def test_a_copied_set_reads_its_own_ark(tmp_path):
    """cp -a exp/A exp/B leaves B's scp naming A's ark: B's ark, beside its scp, is the one read."""
    scp, mats = write_set(tmp_path / "A")
    copy = tmp_path / "B"
    copy.mkdir()
    (copy / "embeddings.scp").write_text(scp.read_text())
    (copy / "embeddings.ark").write_bytes((tmp_path / "A" / "embeddings.ark").read_bytes())
    assert str(tmp_path / "A") in (copy / "embeddings.scp").read_text()
    assert {r.ark for r in Table(copy / "embeddings.scp").records.values()} == {str(copy / "embeddings.ark")}
    (copy / "embeddings.ark").write_bytes(b"")
    with pytest.raises(ArkError, match=rf"^{copy}/embeddings.ark: .*truncated"):
        list(Table(copy / "embeddings.scp").read())


def test_an_ark_that_is_not_a_regular_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "f.ark")
    (tmp_path / "f.scp").write_text(f"u {tmp_path}/f.ark:2\n")
    with pytest.raises(ArkError, match="not a regular file"):
        Table(tmp_path / "f.scp")


def test_truncated_arks_are_caught_also_at_a_record_boundary(tmp_path):
    scp, mats = write_set(tmp_path)
    ark = tmp_path / "embeddings.ark"
    utts = sorted(mats)
    assert set_problem(ark, utts) is None
    whole = ark.read_bytes()
    third_last = offsets(scp)[-3]
    key_start = third_last[1] - len(third_last[0]) - 1
    ark.write_bytes(whole[:key_start])  # the reproduction: cut where a record's key starts
    assert f"utterance '{third_last[0]}'" in set_problem(ark, utts) and "truncated" in set_problem(ark, utts)
    with pytest.raises(ArkError, match=rf"{ark}: utterance '{third_last[0]}' \({scp}:2\): .*truncated.*rm -r "
                                       rf"{tmp_path}; steps/extract.sh"):
        list(Table(scp).read())
    ark.write_bytes(whole[:-7])  # inside the last record's values
    assert "values run past the end" in set_problem(ark, utts)
    ark.write_bytes(whole + b"junk")  # records the scp no longer lists
    assert "records are missing from the scp" in set_problem(ark, utts)
    ark.write_bytes(whole)
    scp.write_text("".join(scp.read_text().splitlines(keepends=True)[:-1]))  # scp cut at a line
    assert "lists 3 utterances, not the 4" in set_problem(ark, utts)


def test_offsets_kinds_and_shapes_are_checked(tmp_path):
    scp, mats = write_set(tmp_path)
    utts = sorted(mats)
    text = scp.read_text()
    (u0, o0), (u1, o1) = offsets(scp)[:2]
    scp.write_text(text.replace(f":{o1}\n", f":{o0}\n"))  # u1 pointing at u0's record
    with pytest.raises(ArkError, match=f"utterance '{u1}'.*does not follow the key"):
        list(Table(scp).read())
    # a float64 record, and a record of another dimension, among the float32 ones
    for bad, match in ((np.ones((3, 8)), r"no float32 matrix or vector .*DM"), (np.ones((3, 5), np.float32),
                                                                                r"a 3x5 record among 3x8 ones")):
        write_embeddings(sorted(mats.items()), tmp_path / "embeddings.ark")
        kaldiio.save_ark(str(tmp_path / "x.ark"), {u1: bad}, scp=str(tmp_path / "x.scp"))
        scp.write_text(scp.read_text().replace(f"{u1} {tmp_path}/embeddings.ark:{o1}",
                                               (tmp_path / "x.scp").read_text().strip()))
        with pytest.raises(ArkError, match=match):
            list(Table(scp).read())
    write_embeddings([(u, m[:2] if u == u1 else m) for u, m in sorted(mats.items())], tmp_path / "embeddings.ark")
    assert "a 2x8 record among 3x8 ones" in set_problem(tmp_path / "embeddings.ark", utts)


def test_damaged_values_name_the_ark_the_utterance_and_the_fix(tmp_path):
    """The issue's reproduction (zero bytes written 15 bytes past an scp offset: the values) and
    NaN, Inf and absurd values: each an error, never a score."""
    scp, mats = write_set(tmp_path)
    ark = tmp_path / "embeddings.ark"
    whole = ark.read_bytes()
    u, o = offsets(scp)[0]
    for fill, match in ((np.zeros(24), "crop 1 of 3 is all zeros"),
                        (np.full(24, np.nan), "crop 1 of 3 holds 8 NaN and 0 infinite"),
                        (np.full(24, np.inf), "crop 1 of 3 holds 0 NaN and 8 infinite"),
                        (np.full(24, 1e30), r"crop 1 of 3 has length 2.83e\+30, above 1e\+06"),
                        (np.full(24, 1e6), r"crop 1 of 3 has length 2.83e\+06, above 1e\+06")):
        data = bytearray(whole)
        data[o + 15:o + 15 + 96] = fill.astype(np.float32).tobytes()
        ark.write_bytes(bytes(data))
        assert set_problem(ark, sorted(mats)) is None  # the structure is whole: stage 5 reads the values
        with pytest.raises(ArkError, match=rf"{ark}: utterance '{u}' \({scp}:1\): {match}"):
            scoring.read_embeddings(scp, fix="FIX")
        with pytest.raises(ArkError, match="; FIX$"):
            scoring.read_embeddings(scp, fix="FIX")
    ark.write_bytes(whole)
    assert len(scoring.read_embeddings(scp).utts) == 4


def test_value_bounds():
    x = np.ones((2, 4), np.float32)
    assert value_problem(x) is None and value_problem(x[0]) is None
    x[1] = [arks.MAX_NORM / 2] * 4  # length exactly MAX_NORM
    assert value_problem(x) is None
    x[1, 2] *= 2
    assert value_problem(x).startswith("crop 2 of 2 has length 1.32e+06, above 1e+06")
    x[1] = [1e-13, 0, 0, 0]
    assert value_problem(x) == "crop 2 of 2 has length 1e-13, below 1e-12 (no direction to score)"
    assert value_problem(np.zeros(4, np.float32)) == "the vector is all zeros (no direction to score)"


def test_keys_with_whitespace_are_refused_by_writers(tmp_path):
    check_key("id1/s/00001", "x")
    for key in ("a b", "a\tb", ""):
        with pytest.raises(ArkError, match="Kaldi table keys may not be empty or contain whitespace"):
            check_key(key, "x")
    with pytest.raises(ArkError, match=rf"{tmp_path}/e.ark: cannot write the key 'a b'"):
        write_embeddings([("a b", np.ones((1, 2), np.float32))], tmp_path / "e.ark")
    assert not (tmp_path / "e.ark").exists() and not (tmp_path / "e.scp").exists()


def test_stage_4_writes_no_values_that_stage_5_would_refuse(tmp_path):
    # re-extracting would make them again: the write stops naming the utterance
    mats = [("a/x/1", np.ones((2, 3), np.float32)), ("a/x/2", np.array([[1, 2, 3], [np.nan, 0, 1]], np.float32))]
    with pytest.raises(SpkidError, match=rf"^{tmp_path}/e.ark: utterance 'a/x/2': its embedding: crop 2 of 2 holds "
                                         r"1 NaN .*nothing is written"):
        write_embeddings(mats, tmp_path / "e.ark")
    assert not (tmp_path / "e.ark").exists() and not (tmp_path / "e.scp").exists()
