"""The command line's smaller promises, found by mutation testing (tests/MUTATION.md).

Defaults and bounds of the options, the wording rules of ``--help``, what each error
message names, the checks ``train`` makes before any work, and the standard-output
wrapper that keeps a failed write from stopping training.
"""

import errno
import importlib.metadata
import io
import os
import re
import signal
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_cli import IMAGES, fake_training  # noqa: F401  (a fixture)

from cnn import cli
from cnn.casestudy import training
from cnn.casestudy.cbis import CROPS
from cnn.casestudy.networks import INPUT_SIZE, ORIGINAL_SIZE, build_original


def subparsers():
    """``cli.build_parser()`` and its subcommands' parsers, ``{"train": ..., ...}``."""
    parser = cli.build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return parser, action.choices


def test_train_defaults_are_the_documented_ones():
    args = cli.build_parser().parse_args(["train", "--out", "m"])
    assert args.command == "train" and args.out == "m.npz"
    assert args.data == "synthetic" and args.arch == "small"
    assert args.epochs == training.DEFAULT_EPOCHS
    assert args.n_per_class == training.DEFAULT_N_PER_CLASS
    assert args.class_weights == "none" and args.crop == "cropped" and args.seed == 0
    assert args.cbis_root is None and args.cbis_train is None and args.cbis_test is None
    predict = cli.build_parser().parse_args(["predict", "a.png", "b.png"])
    assert predict.command == "predict" and predict.images == ["a.png", "b.png"]
    assert predict.arch == "small" and predict.model is None


def test_every_default_is_one_of_its_choices():
    # argparse never checks a default against the choices: a typo would pass silently.
    for sub in subparsers()[1].values():
        for action in sub._actions:
            if action.choices is not None:
                assert action.default in action.choices, action.dest
    assert set(subparsers()[1]) == {"train", "predict"}


@pytest.mark.parametrize("flag, low, high", [
    ("--epochs", 1, cli.MAX_EPOCHS),
    ("--n-per-class", cli.MIN_N_PER_CLASS, cli.MAX_N_PER_CLASS),
    ("--seed", 0, None),
])
def test_integer_options_take_their_bounds_and_refuse_one_past(flag, low, high, capsys):
    parser = cli.build_parser()
    dest = flag[2:].replace("-", "_")
    for value in [low, high] if high is not None else [low, 2**40]:
        args = parser.parse_args(["train", flag, str(value), "--out", "m"])
        assert getattr(args, dest) == value
    refused = [(low - 1, f"must be >= {low}, got {low - 1}"),
               ("1.5", "not an integer: '1.5'")]
    if high is not None:
        refused.append((high + 1, f"must be <= {high}, got {high + 1}"))
    for value, message in refused:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["train", flag, str(value), "--out", "m"])
        assert exit_info.value.code == 2
        assert f"argument {flag}: {message}" in capsys.readouterr().err


def test_options_are_required_or_repeated_as_documented(capsys):
    parser = cli.build_parser()
    for argv in (["train"], ["predict"], [], ["train", "--out", "m", "--cbis-train"]):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(argv)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: --out" in err
    assert "the following arguments are required: IMAGE" in err
    assert "the following arguments are required: command" in err
    args = parser.parse_args(["train", "--out", "m", "--data", "cbis", "--cbis-root",
                              "r", "--cbis-train", "a.csv", "b.csv", "--cbis-test",
                              "c.csv", "--crop", "roi", "--class-weights", "balanced"])
    assert args.cbis_train == ["a.csv", "b.csv"] and args.cbis_test == ["c.csv"]
    assert (args.data, args.cbis_root, args.crop, args.class_weights) == (
        "cbis", "r", "roi", "balanced")
    crop = subparsers()[1]["train"]._option_string_actions["--crop"]
    assert sorted(crop.choices) == sorted(CROPS)


#: Words of the help that keep their capitals: acronyms, symbols and proper names.
PROPER = {"CNN", "CBIS-DDSM", "CSV", "ROI", "N", "N_k", "Pillow", "NumPy"}


def help_texts():
    """(where, text) of every help string: the commands' and each option's."""
    parser, commands = subparsers()
    command = next(a for a in parser._actions if a.dest == "command")
    texts = [(f"{a.dest} (command)", a.help) for a in command._choices_actions]
    for name, sub in commands.items():
        texts += [(f"{name} {action.dest}", action.help) for action in sub._actions]
    return texts


def test_every_command_and_option_has_help_in_the_parsers_style():
    # argparse's own help ("show this help message and exit") is a lower-case phrase
    # without a final period; every help here follows it, and proper names keep their
    # spelling (CBIS-DDSM, not cbis-ddsm; 'cnn' only as the command's name).
    texts = help_texts()
    assert {where for where, _ in texts} >= {
        "train (command)", "predict (command)", "train epochs", "train out",
        "predict model"}
    for where, text in texts:
        assert text, f"{where} has no help"
        assert text[0].islower() and not text.endswith("."), (where, text)
        for word in re.findall(r"[A-Za-z][A-Za-z_-]*", text):
            if word.lower() in {name.lower() for name in PROPER}:
                assert word in PROPER or (word == "cnn" and re.search(
                    r"'cnn (train|predict)", text)), (where, word)
            else:
                assert word.islower() or word in PROPER, (where, word)


def test_help_states_the_sizes_and_the_books_title():
    parser, commands = subparsers()
    description = parser.description
    assert description.startswith("Classify ") and description.endswith(".")
    summary = importlib.metadata.metadata("cnn-from-scratch")["Summary"]
    title = summary.split(":")[0]  # the book's title, as in _config.yml
    assert f"'{title}'" in description
    capitalised = [w for w in re.findall(r"[A-Za-z][A-Za-z-]*", description)
                   if not w.islower()]
    assert capitalised == ["Classify", "CNN", *re.findall(r"[A-Z][A-Za-z]*", title)]
    arch = commands["train"]._option_string_actions["--arch"].help
    assert f"{INPUT_SIZE} x {INPUT_SIZE} patches" in arch
    assert f"{ORIGINAL_SIZE} x {ORIGINAL_SIZE} patches" in arch
    parameters = sum(p.size for p in build_original(rng=np.random.default_rng(0))
                     .parameters().values())
    assert f"({round(parameters / 1e6)} million parameters)" in arch
    weights = commands["train"]._option_string_actions["--class-weights"].help
    assert "N / (3 N_k)" in weights and weights.endswith("(default: none)")
    usage = commands["train"].format_usage() + commands["predict"].format_usage()
    for shown in ["--cbis-train CSV [CSV ...]", "--cbis-test CSV [CSV ...]",
                  "IMAGE [IMAGE ...]", "--arch {small,original}"]:
        assert shown in usage
    assert usage.startswith("usage: cnn train ")


# --- train: the checks before any work ------------------------------------------------


def name_max(folder):
    return os.pathconf(folder, "PC_NAME_MAX")


def test_out_is_refused_before_training_when_the_saves_temporary_file_cannot_exist(
        tmp_path, monkeypatch, capsys, fake_training):  # noqa: F811
    # Sequential.save writes ".<name>.<8 random characters>.tmp" beside the model, then
    # renames it; a name that fits but leaves no room for that file must fail now.
    monkeypatch.chdir(tmp_path)
    room = name_max(tmp_path) - len("." + "." + "abcdefgh" + ".tmp")
    fits, too_long = "m" * (room - 4) + ".npz", "m" * (room + 1 - 4) + ".npz"
    assert cli.main(["train", "--out", fits]) == 0
    assert fake_training and (tmp_path / fits).is_file()
    fake_training.clear()
    assert cli.main(["train", "--out", too_long]) == 1
    assert fake_training == [] and not (tmp_path / too_long).exists()
    err = capsys.readouterr().err
    assert err == (f"cnn train: error: cannot save the model to {too_long}: folder .: "
                   "File name too long\n")


def test_an_unwritable_out_names_the_folder_and_the_reason(tmp_path, capsys,
                                                           fake_training):  # noqa: F811
    out = tmp_path / "none" / "m.npz"
    assert cli.main(["train", "--out", str(out)]) == 1
    assert capsys.readouterr().err == (
        f"cnn train: error: cannot save the model to {out}: folder {out.parent}: "
        "No such file or directory\n")
    assert fake_training == []


class Found:
    """What ``load_cbis_ddsm`` returns, for a loader replaced by a recording one."""

    def __init__(self, n, patients):
        self.x = np.zeros((n, 1, INPUT_SIZE, INPUT_SIZE), np.float32)
        self.y = np.arange(n) % 3
        self.class_counts = {"benign": n - n // 2, "malignant": n // 2}
        self.patients = np.array(patients)


@pytest.fixture
def cbis_calls(tmp_path, monkeypatch):
    """A CBIS-DDSM folder whose loader records its calls; training records its data."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "root").mkdir()
    calls = []

    def load(root, csv_files, size, crop):
        calls.append((root, csv_files, size, crop))
        return Found(6, [f"P{i // 2}" for i in range(6)]) if len(calls) == 1 else Found(
            3, ["Q0", "Q1", "Q2"])

    def train_model(epochs, n_per_class, seed, verbose, data, groups, class_weights,
                    arch):
        calls.append((data, groups))
        return cli.ARCHITECTURES[arch][0](rng=np.random.default_rng(0)), 0.5

    monkeypatch.setattr(cli, "load_cbis_ddsm", load)
    monkeypatch.setattr(cli, "train_model", train_model)
    return calls


def test_cbis_options_reach_the_loader_and_the_training_patients_the_split(cbis_calls,
                                                                           capsys):
    argv = ["train", "--data", "cbis", "--cbis-root", "root", "--cbis-train", "a.csv",
            "--cbis-test", "b.csv", "--crop", "roi", "--out", "m"]
    assert cli.main(argv) == 0
    (train_call, test_call, (data, groups)) = cbis_calls
    assert train_call == ("root", ["a.csv"], INPUT_SIZE, "roi")
    assert test_call == ("root", ["b.csv"], INPUT_SIZE, "roi")
    assert [len(part) for part in data] == [6, 6, 3, 3]
    assert groups.tolist() == ["P0", "P0", "P1", "P1", "P2", "P2"]
    out = capsys.readouterr().out
    assert "CBIS-DDSM training patches: 6 (benign 3, malignant 3)\n" in out
    assert "CBIS-DDSM test patches: 3 (benign 2, malignant 1)\n" in out


def test_csv_files_without_abnormalities_are_named(cbis_calls, monkeypatch, capsys):
    monkeypatch.setattr(cli, "load_cbis_ddsm", lambda *args, **kwargs: Found(0, []))
    assert cli.main(["train", "--data", "cbis", "--cbis-root", "root", "--cbis-train",
                     "a.csv", "--cbis-test", "b.csv", "--out", "m"]) == 1
    assert capsys.readouterr().err == (
        "cnn train: error: the training CSV files ['a.csv'] list no abnormalities\n")


def test_the_same_csv_for_training_and_testing_is_warned_of_once(cbis_calls, capsys):
    assert cli.main(["train", "--data", "cbis", "--cbis-root", "root", "--cbis-train",
                     "a.csv", "b.csv", "--cbis-test", "./a.csv", "c.csv",
                     "--out", "m"]) == 0
    assert capsys.readouterr().err == (
        "cnn train: warning: ./a.csv is used for training and for testing; the test "
        "accuracy will be optimistic\n")


@pytest.mark.parametrize("error, message", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/x.dcm"),
     "/data/x.dcm: Permission denied"),
    (OSError(errno.EIO, "Input/output error"), "Input/output error"),
    (MemoryError(), "MemoryError"),
])
def test_an_unforeseen_error_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys,
                                                         error, message):
    def fails(*args, **kwargs):
        raise error
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "train_model", fails)
    assert cli.main(["train", "--out", "m"]) == 1
    assert capsys.readouterr().err == f"cnn train: error: {message}\n"


# --- standard output ------------------------------------------------------------------


class Stream:
    """A stream that is a terminal or not, and fails every call once told to."""

    def __init__(self, tty=False, error=None):
        self.tty, self.error, self.text, self.flushes = tty, error, [], 0

    def write(self, text):
        if self.error:
            raise self.error
        self.text.append(text)

    def flush(self):
        if self.error:
            raise self.error
        self.flushes += 1

    def isatty(self):
        return self.tty


def test_output_passes_everything_on_while_the_stream_works():
    stream = Stream(tty=True)
    out = cli._Output(stream)
    assert out.write("abc") == 3 and out.isatty() is True
    out.flush()
    assert stream.text == ["abc"] and stream.flushes == 1 and out.error is None
    assert cli._Output(Stream(tty=False)).isatty() is False


@pytest.mark.parametrize("error", [BrokenPipeError(errno.EPIPE, "Broken pipe"),
                                   ValueError("I/O operation on closed file")])
def test_output_keeps_the_first_failure_and_discards_the_rest(error):
    stream = Stream(tty=True, error=error)
    out = cli._Output(stream)
    assert out.write("abc") == 3
    assert out.error is error
    stream.error = None
    assert out.write("def") == 3 and out.isatty() is False
    out.flush()
    assert stream.text == [] and stream.flushes == 0 and out.error is error


def test_output_without_a_stream_is_closed_standard_output():
    out = cli._Output(None)
    assert out.isatty() is False and out.error is None
    assert out.write("abc") == 3
    assert isinstance(out.error, OSError) and out.error.errno == errno.EBADF
    assert out.error.strerror == "standard output is closed"
    first = out.error
    out.flush()
    assert out.error is first


def test_a_failed_output_is_reported_with_the_saved_model(monkeypatch, capsys):
    stream = Stream(error=OSError(errno.ENOSPC, "No space left on device"))
    monkeypatch.setattr(cli.sys, "stdout", cli._Output(stream))
    print("epoch 1/1")
    assert cli._output_status("train", "the model was saved to m.npz") == 1
    assert capsys.readouterr().err == (
        "cnn train: error: cannot write to standard output: No space left on device; "
        "the model was saved to m.npz\n")
    assert cli._output_status("predict") == 1
    assert capsys.readouterr().err == ("cnn predict: error: cannot write to standard "
                                       "output: No space left on device\n")
    monkeypatch.setattr(cli.sys, "stdout", cli._Output(Stream(error=BrokenPipeError())))
    print("x")
    assert cli._output_status("predict") == cli.EXIT_BROKEN_PIPE == 141
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(cli.sys, "stdout", cli._Output(Stream()))
    assert cli._output_status("predict") == 0


def test_quiet_stdout_sends_the_descriptor_to_the_null_device(tmp_path, monkeypatch):
    with open(tmp_path / "out.txt", "w") as file:
        monkeypatch.setattr(cli.sys, "stdout", file)
        cli._quiet_stdout()
        file.write("lost")
        file.flush()
        os.write(file.fileno(), b"lost too")
    assert (tmp_path / "out.txt").read_text() == ""
    monkeypatch.setattr(cli.sys, "stdout", io.StringIO())
    cli._quiet_stdout()  # no descriptor: nothing to do, no error


# --- more of train: what reaches the training, what a failed save says ----------------


def test_cbis_without_training_csv_files_names_that_option(capsys):
    assert cli.main(["train", "--data", "cbis", "--cbis-root", ".", "--cbis-test",
                     "b.csv", "--out", "m"]) == 2
    assert capsys.readouterr().err == (
        "cnn train: error: --data cbis needs --cbis-train\n")


def test_class_weights_reach_the_training(tmp_path, monkeypatch):
    seen = []

    def train_model(**kwargs):
        seen.append((kwargs["class_weights"], kwargs["arch"]))
        return cli.ARCHITECTURES["small"][0](rng=np.random.default_rng(0)), 0.5

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "train_model", lambda *_, **kwargs: train_model(**kwargs))
    for weights in ("balanced", "none"):
        assert cli.main(["train", "--class-weights", weights, "--out", "m"]) == 0
    assert seen == [("balanced", "small"), ("none", "small")]


class Unsaveable:
    """A trained model whose file system refuses the save after the checks passed."""

    def save(self, path):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_save_that_fails_says_so_and_exits_with_1(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "train_model", lambda *args, **kwargs: (Unsaveable(), 0.5))
    assert cli.main(["train", "--out", "m"]) == 1
    captured = capsys.readouterr()
    assert captured.err == ("cnn train: error: cannot save the model to m.npz: "
                            "[Errno 28] No space left on device\n")
    assert "test accuracy" not in captured.out


def test_the_last_line_says_how_long_training_took(tmp_path, monkeypatch, capsys,
                                                   fake_training):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    clock = iter([100.0, 112.25])
    monkeypatch.setattr(cli.time, "perf_counter", lambda: next(clock))
    assert cli.main(["train", "--out", "m"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "test accuracy 0.5000; trained in 12.2 s; saved to m.npz")


# --- more of predict and main: flushing, encodings, signals, the descriptor -----------


class FlushFails(Stream):
    """Standard output whose reader is gone: a write is buffered, a flush fails."""

    def flush(self):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_predict_flushes_each_row_and_stops_when_the_reader_is_gone(tmp_path,
                                                                    monkeypatch):
    from cnn.casestudy.networks import build_cnn
    build_cnn(rng=np.random.default_rng(0)).save(tmp_path / "m.npz")
    stream = FlushFails()
    monkeypatch.setattr(cli.sys, "stdout", stream)
    status = cli.main(["predict", *IMAGES, "--model", str(tmp_path / "m.npz")])
    assert status == cli.EXIT_BROKEN_PIPE
    rows = "".join(stream.text).splitlines()
    assert len(rows) == 2  # the header and one row
    assert rows[1].startswith(IMAGES[0] + "\t")
    assert cli.sys.stdout is stream


def test_names_the_terminal_cannot_encode_are_escaped_not_fatal(tmp_path, monkeypatch):
    from cnn.casestudy.networks import build_cnn
    build_cnn(rng=np.random.default_rng(0)).save(tmp_path / "m.npz")
    image = tmp_path / "caf\u00e9.png"
    image.write_bytes(Path(IMAGES[0]).read_bytes())
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    err = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(cli.sys, "stdout", out)
    monkeypatch.setattr(cli.sys, "stderr", err)
    assert cli.main(["predict", str(image), str(tmp_path / "\u00e9.png"),
                     "--model", str(tmp_path / "m.npz")]) == 1
    out.flush()
    err.flush()
    rows = out.buffer.getvalue().decode("ascii").splitlines()
    assert rows[1].startswith(str(tmp_path / "caf\\xe9.png") + "\t")
    assert "\\xe9.png" in err.buffer.getvalue().decode("ascii")


@pytest.mark.parametrize("stop, status, word", [
    (lambda: os.kill(os.getpid(), signal.SIGTERM), cli.EXIT_TERMINATED, "terminated"),
    (KeyboardInterrupt, cli.EXIT_INTERRUPTED, "interrupted"),
])
def test_a_signal_ends_in_one_line_and_the_handler_is_restored(
        tmp_path, monkeypatch, capsys, stop, status, word):
    def train_model(*args, **kwargs):
        if isinstance(stop, type):
            raise stop
        stop()
        raise AssertionError("SIGTERM did not stop training")

    def outside(signum, frame):  # the handler main must replace, then restore
        raise AssertionError("SIGTERM reached the handler outside main")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "train_model", train_model)
    before = signal.signal(signal.SIGTERM, outside)
    try:
        assert cli.main(["train", "--out", "m"]) == status == 128 + (
            signal.SIGTERM if word == "terminated" else signal.SIGINT)
        assert signal.getsignal(signal.SIGTERM) is outside
    finally:
        signal.signal(signal.SIGTERM, before)
    assert capsys.readouterr().err == f"cnn train: {word}\n"
    assert os.listdir(tmp_path) == []


def test_main_runs_outside_the_main_thread_and_leaves_sigterm_alone(capsys):
    # signal.signal works only in the main thread; elsewhere SIGTERM keeps its handler.
    before, results = signal.getsignal(signal.SIGTERM), []
    thread = threading.Thread(target=lambda: results.append(
        cli.main(["predict", "x.png", "--arch", "original"])))
    thread.start()
    thread.join()
    assert results == [2] and signal.getsignal(signal.SIGTERM) is before
    assert "--arch original needs --model" in capsys.readouterr().err


def test_stdout_goes_to_the_null_device_only_after_a_failed_write(tmp_path, monkeypatch,
                                                                  capsys):
    from cnn.casestudy.networks import build_cnn
    model = tmp_path / "m.npz"
    build_cnn(rng=np.random.default_rng(0)).save(model)
    with open(tmp_path / "out.txt", "w") as file:
        monkeypatch.setattr(cli.sys, "stdout", file)
        assert cli.main(["predict", IMAGES[0], "--model", str(model)]) == 0
        assert cli.sys.stdout is file
        print("after", file=file, flush=True)
    assert (tmp_path / "out.txt").read_text().splitlines()[-1] == "after"
    read, write = os.pipe()
    os.close(read)
    with open(write, "w") as pipe:
        monkeypatch.setattr(cli.sys, "stdout", pipe)
        assert cli.main(["predict", IMAGES[0], "--model", str(model)]) == 141
        assert cli.sys.stdout is pipe
        assert os.path.samestat(os.fstat(pipe.fileno()), os.stat(os.devnull))


@pytest.mark.parametrize("error, status, message", [
    (OSError(errno.ENOSPC, "No space left on device"), 1,
     "cnn train: error: cannot write to standard output: No space left on device; the "
     "model was saved to m.npz\n"),
    (BrokenPipeError(errno.EPIPE, "Broken pipe"), cli.EXIT_BROKEN_PIPE, ""),
])
def test_train_saves_the_model_when_standard_output_fails(tmp_path, monkeypatch, capsys,
                                                          fake_training,  # noqa: F811
                                                          error, status, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli.sys, "stdout", Stream(error=error))
    assert cli.main(["train", "--out", "m"]) == status
    assert capsys.readouterr().err == message
    assert (tmp_path / "m.npz").is_file() and fake_training


@pytest.mark.parametrize("out", ["", " ", "sub/"])
def test_an_out_that_names_no_file_is_refused_with_its_text(out, capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--out", out])
    assert f"argument --out: must name a file, got {out!r}\n" in capsys.readouterr().err


@pytest.mark.parametrize("mode", [0o444, 0o555, 0o400])
def test_an_out_without_any_write_permission_is_refused(tmp_path, monkeypatch, capsys,
                                                        mode):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "old.npz").write_bytes(b"an old model")
    (tmp_path / "old.npz").chmod(mode)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--out", "old"])
    assert capsys.readouterr().err.endswith(
        "argument --out: old.npz exists and is write-protected: it is not replaced; "
        "choose another file or remove the protection\n")
    (tmp_path / "old.npz").chmod(0o200)  # writable by its owner only: replaced
    assert cli.build_parser().parse_args(["train", "--out", "old"]).out == "old.npz"


def test_output_status_outside_main_is_0(capsys):
    assert cli._output_status("predict") == 0
    assert capsys.readouterr().err == ""


def test_predict_original_without_a_model_is_one_error_line(capsys):
    assert cli.main(["predict", "x.png", "--arch", "original"]) == 2
    assert capsys.readouterr().err == (
        "cnn predict: error: --arch original needs --model: train one first with 'cnn "
        "train --arch original --out model.npz' (about 50 min)\n")


@pytest.mark.parametrize("command", [["train", "--out", "m"], ["predict", "x.png"]])
def test_an_unknown_architecture_is_a_usage_error(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args([*command, "--arch", "tiny"])
    assert exit_info.value.code == 2
    assert "argument --arch: invalid choice: 'tiny'" in capsys.readouterr().err


def test_predict_without_a_model_says_what_it_trains(monkeypatch, capsys):
    model = cli.ARCHITECTURES["small"][0](rng=np.random.default_rng(0))
    monkeypatch.setattr(cli, "train_model", lambda arch: (model, 0.5))
    assert cli.main(["predict", IMAGES[0]]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        "cnn predict: no --model given; training the default model (seed 0, "
        f"{training.DEFAULT_EPOCHS} epochs); save one with 'cnn train --out model.npz'")


def test_a_model_that_cannot_be_loaded_is_one_error_line(tmp_path, capsys):
    (tmp_path / "m.npz").write_bytes(b"not a model")
    assert cli.main(["predict", IMAGES[0], "--model", str(tmp_path / "m.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"cnn predict: error: cannot load model {tmp_path}/m.npz: ")
    assert err.count("\n") == 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_predict_reports_image_warnings_and_leaves_the_others_to_the_filters(
        tmp_path, monkeypatch, capsys):
    from cnn.data import ImageWarning, load_image
    model = tmp_path / "m.npz"
    cli.ARCHITECTURES["small"][0](rng=np.random.default_rng(0)).save(model)

    def warning_load(path, size):
        warnings.warn("an old API", DeprecationWarning)
        warnings.warn(f"image {path} is blank", ImageWarning)
        return load_image(path, size)

    monkeypatch.setattr(cli, "load_image", warning_load)
    assert cli.main(["predict", IMAGES[0], IMAGES[0], "--model", str(model)]) == 0
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if "warning" in line]
    assert warned == [f"cnn predict: warning: image {IMAGES[0]} is blank"] * 2


def test_predict_reports_a_failed_output(tmp_path, monkeypatch, capsys):
    model = tmp_path / "m.npz"
    cli.ARCHITECTURES["small"][0](rng=np.random.default_rng(0)).save(model)
    monkeypatch.setattr(cli.sys, "stdout",
                        Stream(error=OSError(errno.ENOSPC, "No space left on device")))
    assert cli.main(["predict", IMAGES[0], "--model", str(model)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "cnn predict: error: cannot write to standard output: No space left on device")


def test_escape_of_the_bytes_that_are_not_utf8_and_of_other_surrogates():
    # A byte b >= 0x80 of a file name that is not UTF-8 reaches Python as U+DC00 + b.
    for byte in (0x80, 0x81, 0xFE, 0xFF):
        assert cli.escape(os.fsdecode(bytes([byte]))) == f"\\x{byte:02x}"
    assert cli.escape("\udc7f\udd00") == "\\udc7f\\udd00"  # not from a byte
