import dataclasses
from pathlib import Path

import pytest

from spkid.config import ConfigError, SavedConf, parse_options, read_resolved, write_resolved
from spkid.options import SYSTEM_OPTIONS, EvalOptions, LossOptions, ModelOptions, TrainOptions


@dataclasses.dataclass
class Run:
    nj: int = dataclasses.field(default=1, metadata={"help": "jobs"})
    out: str = dataclasses.field(default="", metadata={"help": "output"})


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_defaults_are_the_papers():
    model, loss, train = parse_options([ModelOptions, LossOptions, TrainOptions], []).of([ModelOptions, LossOptions, TrainOptions])
    assert (loss.margin, loss.scale, train.lr, train.weight_decay) == (0.2, 30.0, 0.001, 5e-5)
    assert model.embed_bn is False and train.train_frames == 200


def test_later_config_wins_and_command_line_overrides_all(tmp_path):
    a = write(tmp_path, "a.conf", "# system\n--loss=ap  # metric\n--lr=0.01\n--embed-bn=true\n")
    b = write(tmp_path, "b.conf", "--lr=0.02\n\n--epochs=3\n")
    args = parse_options([ModelOptions, LossOptions, TrainOptions],
                         ["--config", a, f"--config={b}", "--epochs", "7", "exp/X"], positional=["exp_dir"])
    assert args[LossOptions].loss == "ap" and args[ModelOptions].embed_bn is True
    assert args[TrainOptions].lr == 0.02 and args[TrainOptions].epochs == 7 and args.positionals == {"exp_dir": "exp/X"}
    assert args.given == {"loss", "lr", "embed_bn", "epochs"}
    assert args.replaced == (f"{b} replaces what {a} set: --lr=0.01 -> 0.02 (the last --config wins; an option "
                             f"given on the command line wins over all)",)
    # the command line wins even when it comes before a --config
    assert parse_options([TrainOptions], ["--epochs=9", "--config", b])[TrainOptions].epochs == 9


@pytest.mark.parametrize("text,fragment", [
    ("--lr=0.1\n--lr-stpe=3\n", "a.conf:2: unknown option --lr-stpe; did you mean --lr-step?"),
    ("lr=0.1\n", "a.conf:1: expected '--option=value'"),
    ("--epochs=ten\n", "a.conf:1: --epochs takes an integer, not 'ten'"),
    ("--embed-bn=yes\n", "a.conf:1: --embed-bn takes true or false"),
    ("--loss=triplet\n", "a.conf:1: --loss=triplet is not one of"),
    ("--config=other.conf\n", "a.conf:1: --config cannot be nested"),
    # values that used to fail deep in training with a traceback (StepLR, the sampler, Adam, ...)
    ("--epochs=3\n--lr-step=0\n", "a.conf:2: --lr-step=0 is out of range: it must be at least 1"),
    ("--batch-size=0\n", "a.conf:1: --batch-size=0 is out of range: it must be at least 1"),
    ("--train-frames=0\n", "a.conf:1: --train-frames=0 is out of range: it must be at least 1"),
    ("--eval-frames=-5\n", "a.conf:1: --eval-frames=-5 is out of range: it must be at least 1"),
    ("--lr=-1\n", "a.conf:1: --lr=-1 is out of range: it must be at least 0.0"),
    ("--num-workers=-1\n", "a.conf:1: --num-workers=-1 is out of range: it must be at least 0"),
    ("--epochs=0\n", "a.conf:1: --epochs=0 is out of range: it must be at least 1"),
    # nan passes every range check and inf a least value: both trained NaN weights and exited 0
    ("--lr=nan\n", "a.conf:1: --lr takes a finite number, not 'nan'"),
    ("--lr=inf\n", "a.conf:1: --lr takes a finite number, not 'inf'"),
    ("--weight-decay=Infinity\n", "a.conf:1: --weight-decay takes a finite number, not 'Infinity'"),
    ("--lr-decay=NaN\n", "a.conf:1: --lr-decay takes a finite number, not 'NaN'"),
    ("--margin=-inf\n", "a.conf:1: --margin takes a finite number, not '-inf'"),
    # each of these trained to a loss of 0.0000 and exited 0
    ("--margin=10\n", "a.conf:1: --margin=10.0 is out of range for --loss=aam_softmax: the margin must be at least 0"),
    ("--margin=-1\n", "a.conf:1: --margin=-1.0 is out of range for --loss=aam_softmax"),
    ("--scale=0\n", "a.conf:1: --scale=0.0 is out of range for --loss=aam_softmax: the scale must be greater than 0"),
    ("--loss=am_softmax\n--scale=-30\n", "a.conf:2: --scale=-30.0 is out of range for --loss=am_softmax"),
    ("--loss=am_softmax\n--margin=1\n", "a.conf:2: --margin=1.0 is out of range for --loss=am_softmax"),
    # a negative seed failed in the sampler, a 65-bit one in torch, after config.conf was written
    ("--seed=-1\n", "a.conf:1: --seed=-1 is out of range: it must be at least 0"),
    ("--seed=18446744073709551616\n", "a.conf:1: --seed=18446744073709551616 is out of range: it must be at most"),
])
def test_bad_conf_lines_name_file_and_line(tmp_path, text, fragment):
    a = write(tmp_path, "a.conf", text)
    with pytest.raises(ConfigError) as e:
        parse_options(SYSTEM_OPTIONS, ["--config", a])
    assert fragment in str(e.value)


def test_margin_ranges_are_per_loss(tmp_path):
    # AAM-softmax takes margins up to pi/2, AM-softmax below 1; losses without a margin ignore it
    assert parse_options([LossOptions], ["--margin=1.2"])[LossOptions].margin == 1.2
    assert parse_options([LossOptions], ["--loss=am_softmax", "--margin=0.99"])[LossOptions].margin == 0.99
    assert parse_options([LossOptions], ["--loss=ap", "--margin=10", "--scale=0"])[LossOptions].margin == 10
    with pytest.raises(ConfigError, match=r"command line: --margin=1.6 is out of range for --loss=aam_softmax"):
        parse_options([LossOptions], ["--margin=1.6"])
    # the loss chosen in one file makes another file's margin wrong: the margin's line is named
    conf = write(tmp_path, "m.conf", "--margin=1.2\n")
    with pytest.raises(ConfigError, match=r"m.conf:1: --margin=1.2 is out of range for --loss=am_softmax"):
        parse_options([LossOptions], ["--config", conf, "--loss=am_softmax"])
    # a resolved config.conf edited by hand is refused where it is read back
    bad = write(tmp_path, "config.conf", "--loss=aam_softmax\n--scale=-1\n")
    with pytest.raises(ConfigError, match=r"config.conf:2: --scale=-1.0 is out of range"):
        read_resolved(bad, [LossOptions])


def test_bad_command_line(tmp_path):
    with pytest.raises(ConfigError, match="command line: unknown option --bogus"):
        parse_options([Run], ["--bogus=1"])
    with pytest.raises(ConfigError, match="needs a value"):
        parse_options([Run], ["--nj"])
    with pytest.raises(ConfigError, match="expected EXP_DIR"):
        parse_options([Run], [], positional=["exp_dir"])
    with pytest.raises(ConfigError, match="not found"):
        parse_options([Run], ["--config", str(tmp_path / "missing.conf")])


def test_non_finite_numbers_refused_on_the_command_line():
    with pytest.raises(ConfigError, match="command line: --lr takes a finite number, not 'inf'"):
        parse_options(SYSTEM_OPTIONS, ["--lr=inf"])


def test_byte_order_mark_is_not_part_of_the_first_option(tmp_path):
    # an editor that saves "UTF-8 with BOM" put U+FEFF before '--': the error quoted a line
    # that looked right ("expected '--option=value', got '--lr=0.01'")
    a = tmp_path / "a.conf"
    a.write_bytes("\ufeff--lr=0.01\n--epochs=3\n".encode("utf-8"))
    train = parse_options([TrainOptions], ["--config", str(a)])[TrainOptions]
    assert train.lr == 0.01 and train.epochs == 3
    assert read_resolved(a, [TrainOptions])[0].lr == 0.01


def test_binary_junk_in_a_conf_is_named_by_file_and_line(tmp_path):
    # a UnicodeDecodeError traceback before
    a = tmp_path / "config.conf"
    a.write_bytes(b"--lr=0.01\n--epochs=\xff\xfe\x00junk\n")
    with pytest.raises(ConfigError, match=r"config.conf:2: not UTF-8 text \(byte 0xff at column 10\)"):
        parse_options(SYSTEM_OPTIONS, ["--config", str(a)])
    with pytest.raises(ConfigError, match=r"config.conf:2: not UTF-8"):
        read_resolved(a, SYSTEM_OPTIONS)


def test_option_names_must_be_unique():
    with pytest.raises(TypeError, match="defined by both"):
        parse_options([Run, Run], [])


def test_resolved_round_trip(tmp_path):
    a = write(tmp_path, "a.conf", "--trunk=ECAPA\n--loss=ap_softmax\n--lr-decay=0.5\n--augment=true\n")
    opts = parse_options(SYSTEM_OPTIONS, ["--config", a]).of(SYSTEM_OPTIONS)
    write_resolved(tmp_path / "exp" / "config.conf", *opts, header="resolved")
    back = read_resolved(tmp_path / "exp" / "config.conf", SYSTEM_OPTIONS)
    assert back == opts
    text = (tmp_path / "exp" / "config.conf").read_text()
    assert text.startswith("# resolved\n") and "--augment=true\n" in text
    with pytest.raises(ConfigError, match="unknown option --trunk"):
        read_resolved(tmp_path / "exp" / "config.conf", [Run])


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        parse_options(SYSTEM_OPTIONS, ["--help"], prog="train.py")
    out = capsys.readouterr().out
    for cls in SYSTEM_OPTIONS:
        for f in dataclasses.fields(cls):
            assert "--" + f.name.replace("_", "-") + "=" in out
    assert "--lr-step=16  (int >= 1) StepLR period in epochs" in out
    assert "--seed=1  (int >= 0 <= 4294967295)" in out


def test_given_are_the_options_the_user_set_not_the_saved_conf(tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("--lr=0.01  # set\n# --epochs=3\n")
    saved = tmp_path / "exp" / "config.conf"
    write_resolved(saved, ModelOptions(trunk="ECAPA"), TrainOptions(epochs=5))
    argv = ["--config", str(conf), "--n-mels", "40", "--embed-bn", str(tmp_path / "exp")]
    args = parse_options([ModelOptions, TrainOptions], argv, ["exp_dir"],
                         saved=SavedConf((ModelOptions, TrainOptions), lambda p: Path(p["exp_dir"]) / "config.conf",
                                         "EXP_DIR/config.conf"))
    assert args.given == {"lr", "n_mels", "embed_bn"}
    assert (args[ModelOptions].trunk, args[ModelOptions].n_mels, args[ModelOptions].embed_bn) == ("ECAPA", 40, True)
    assert (args[TrainOptions].epochs, args[TrainOptions].lr) == (5, 0.01)  # the saved conf, under --config


def test_a_step_changes_only_the_saved_options_it_lists(tmp_path, capsys):
    """Scoring reads the system's options from its config.conf: the evaluation ones may be given
    again, the network's are refused, and --help lists only the step's own."""
    write_resolved(tmp_path / "config.conf", *(cls() for cls in SYSTEM_OPTIONS))
    saved = SavedConf(SYSTEM_OPTIONS, lambda p: tmp_path / "config.conf", "EXP_DIR/config.conf")
    args = parse_options([Run, EvalOptions], ["--score-type=plda", "x"], ["exp_dir"], saved=saved)
    assert args[EvalOptions].score_type == "plda" and args[ModelOptions].trunk == "H_ASP"
    with pytest.raises(ConfigError, match=r"^command line: --trunk is the system's own option \(ModelOptions\), "
                                          r"read from EXP_DIR/config.conf; this step cannot change it$"):
        parse_options([Run, EvalOptions], ["--trunk=ECAPA", "x"], ["exp_dir"], saved=saved)
    with pytest.raises(SystemExit):
        parse_options([Run, EvalOptions], ["--help"], ["exp_dir"], prog="score", saved=saved)
    out = capsys.readouterr().out
    assert "--score-type=" in out and "--nj=" in out and "--trunk" not in out and "--epochs" not in out
    assert "read from EXP_DIR/config.conf" in out


def test_a_bool_option_alone_is_true_as_in_kaldi():
    args = parse_options([Run, TrainOptions, ModelOptions], ["--augment", "--compile", "false", "--embed-bn", "x", "y"],
                         ["dirs..."])
    train = args[TrainOptions]
    assert (train.augment, train.compile, args[ModelOptions].embed_bn) == (True, False, True)
    assert args.positionals == {"dirs": ["x", "y"]}
    with pytest.raises(ConfigError, match="expected DIRS..."):
        parse_options([Run], [], ["dirs..."])
