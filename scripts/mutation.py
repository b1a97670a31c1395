"""Mutation testing of the package with mutmut, one module at a time (`make mutation`).

For each module this copies the package and the tests into
``_build/mutation/<module>/``, writes a ``[tool.mutmut]`` section that mutates that
module only and selects the tests that exercise it, runs ``mutmut run`` there and prints
the kill rate. Nothing in the working tree is modified. It is not part of ``make test``
or CI: it takes long (about 20 min for every module on 2 busy cores).

    python scripts/mutation.py                 # every module below
    python scripts/mutation.py optim casestudy/cbis    # some of them
    python scripts/mutation.py --max-children 1 model

The summary of each run is also written to ``_build/mutation/<module>/summary.json``,
with the names of the surviving mutants (``mutmut show NAME`` in that folder shows one).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

EXERCISE_TESTS = ["test_exercises.py", "test_exercises_deeper.py", "test_grading.py",
                  "test_sandbox.py", "test_robustness.py", "test_exercises_mutants.py",
                  "test_exercises_mutants2.py", "test_exercises_modern_mutants.py"]

#: Module -> the test files that exercise it (mutmut runs, for each mutant, only the
#: tests among these that reach the mutated function).
MODULES = {
    "activations": ["test_activations.py", "test_equations.py", "test_validation.py"],
    "losses": ["test_losses.py", "test_equations.py", "test_validation.py"],
    "dense": ["test_dense.py", "test_equations.py", "test_validation.py"],
    "conv": ["test_conv.py", "test_equations.py", "test_validation.py"],
    "pool": ["test_pool.py", "test_equations.py", "test_validation.py"],
    "optim": ["test_optim.py", "test_equations.py"],
    "fast/optim": ["test_optim.py"],
    "fast/layers": ["test_fast_layers.py"],
    "gradcheck": ["test_gradcheck.py", "test_equations.py"],
    "model": ["test_model.py", "test_model_file.py", "test_validation.py",
              "test_optim.py"],
    "modelfile": ["test_model_file.py"],
    "checks": ["test_validation.py", "test_conv.py", "test_layers.py", "test_optim.py"],
    "data": ["test_data.py"],
    "casestudy/cbis": ["test_cbis.py"],
    # Issue 27: the layers, the command line, the tuned kernels, the case-study networks,
    # batch norm, dropout, transposed convolution and the exercise checker.
    "layers": ["test_layers.py", "test_layers_arguments.py", "test_residual.py",
               "test_conv_variants.py", "test_conv_transpose.py", "test_modes.py",
               "test_robustness.py", "test_network_gradients.py", "test_validation.py"],
    "cli": ["test_cli.py", "test_robustness_io.py", "test_model_file.py",
            "test_cli_mutants.py"],
    "fast": ["test_conv.py", "test_pool.py", "test_conv_transpose.py", "test_layers.py",
             "test_conv_variants.py", "test_fast_layers.py", "test_fast_mutants.py",
             "test_equations.py", "test_validation.py", "test_robustness.py"],
    "casestudy/networks": ["test_case_study.py", "test_state_kept.py",
                           "test_networks_mutants.py"],
    "norm": ["test_norm.py", "test_norm_without_batch.py", "test_norm_arguments.py",
             "test_modes.py", "test_equations.py", "test_validation.py",
             "test_robustness.py", "test_state_kept.py"],
    "regularization": ["test_regularization.py", "test_dropout_arguments.py",
                       "test_modes.py", "test_equations.py", "test_validation.py"],
    "conv_transpose": ["test_conv_transpose.py", "test_conv_transpose_defaults.py",
                       "test_conv_transpose_arguments.py", "test_equations.py",
                       "test_validation.py"],
    "exercises": EXERCISE_TESTS,
}
# The checker's files one at a time (its tests take half a minute; a run of the whole
# subpackage does not fit in a session): `exercises/checks` is cnn/exercises/checks.py.
MODULES |= {f"exercises/{name}": EXERCISE_TESTS for name in (
    "checks", "compare", "sandbox", "grading", "calling", "cases", "helpers",
    "special", "catalogue", "deeper", "modern", "draws", "__init__")}
# The sandbox's tests, not those of the checks without it (test_exercises.py) nor the
# grading command's child processes, where no mutant is active.
MODULES["exercises/sandbox"] = ["test_sandbox.py", "test_exercises_mutants.py",
                                "test_robustness.py", "test_exercises_deeper.py"]
# The grading command's end-to-end tests (16 s, with child processes) left out: each
# surviving mutant would cost them.
MODULES["exercises/grading"] = ["test_exercises_mutants.py",
                                "test_grading.py::test_mistakes_in_the_command_are_one_line"]

#: mutmut's (timeout_multiplier, timeout_constant) where its default, 15 times the
#: tests' time, would let each mutant that breaks the time limit hang for minutes.
TIMEOUTS = {"exercises/sandbox": (2.0, 5.0)}

#: Folders that a module's tests read besides the package and the tests (the grading
#: tests grade the student notebooks of assignments/).
ALSO_COPY = {module: ["assignments"] for module in MODULES
             if module.startswith("exercises")}

#: Tests left out of a module's selection. The command-line tests that start ``cnn`` in
#: a subprocess from a temporary folder cannot run under mutmut's statistics run (the
#: child's trampolines look for mutmut's configuration in its working folder); they
#: call nothing in-process, so mutmut would never run them for a mutant anyway. The
#: full-size network's test (8 s, 60 % of the time of all the others) would run for
#: every surviving mutant of the parser; test_cli_mutants.py checks its sizes instead.
DESELECT = {
    "cli": ["tests/test_robustness_io.py::test_train_saves_the_model_whatever_happens",
            "tests/test_robustness_io.py::test_predict_stops_quietly_when_the_reader",
            "tests/test_cli.py::test_train_and_predict_the_original_network_at_full_size"],
}


#: Subpackages mutated file by file: the kernels of ``cnn.fast``, not its machine probes.
PACKAGE_FILES = {"fast": ["conv", "conv_transpose", "pool"]}


def _patterns(module):
    """The files of ``module``: ``cnn/<module>.py``, or the files of a subpackage."""
    if module in PACKAGE_FILES:
        return [f"cnn/{module}/{name}.py" for name in PACKAGE_FILES[module]]
    if (ROOT / "cnn" / module).is_dir():
        return [f"cnn/{module}/*.py"]
    return [f"cnn/{module}.py"]


def mutmut_section(module, tests):
    """The ``[tool.mutmut]`` table for one module (TOML)."""
    left_out = [f'"--deselect={test}"' for test in DESELECT.get(module, [])]
    selection = ", ".join([f'"tests/{name}"' for name in tests] + left_out)
    # mutmut runs the tests in its own copy, mutants/: the sample images too.
    also = ["images/"] + [f"{name}/" for name in ALSO_COPY.get(module, [])]
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["cnn/"]\n'
        f"also_copy = {json.dumps(also)}\n"
        + ("timeout_multiplier = {}\ntimeout_constant = {}\n".format(*TIMEOUTS[module])
           if module in TIMEOUTS else "")
        + f"only_mutate = {json.dumps(_patterns(module))}\n"
        f"pytest_add_cli_args_test_selection = [{selection}]\n"
        'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider"]\n'
    )


def prepare(module, folder):
    """A fresh copy of the package, the tests and pyproject.toml in ``folder``."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "cnn", folder / "cnn", ignore=ignore)
    shutil.copytree(ROOT / "tests", folder / "tests", ignore=ignore)
    shutil.copytree(ROOT / "images", folder / "images")
    for name in ALSO_COPY.get(module, []):
        shutil.copytree(ROOT / name, folder / name)
    text = (ROOT / "pyproject.toml").read_text()
    text = re.sub(r"\n\[tool\.mutmut\].*?(?=\n\[|\Z)", "", text, flags=re.S)
    section = mutmut_section(module, MODULES[module])
    (folder / "pyproject.toml").write_text(text + section)


def results(folder):
    """Mutant name -> status, from ``mutmut results --all true``."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"],
        cwd=folder, capture_output=True, text=True, check=True,
    ).stdout
    statuses = {}
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            statuses[name] = status
    return statuses


def run(module, max_children):
    folder = ROOT / "_build" / "mutation" / module.replace("/", ".")
    prepare(module, folder)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(folder), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for _ in range(2):
        subprocess.run(
            [str(Path(sys.executable).parent / "mutmut"), "run",
             "--max-children", str(max_children)],
            cwd=folder, env=env, check=False, stdout=subprocess.DEVNULL,
        )
        statuses = results(folder)
        # On a busy machine the clean run that precedes the mutants can time out, and
        # then no mutant is checked; a second run picks up where the first stopped.
        if any(status != "not checked" for status in statuses.values()):
            break
    seconds = time.perf_counter() - start
    counts = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    total = len(statuses)
    # Timeouts count as killed (the mutant made the tests hang), as mutmut does.
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    summary = {
        "module": ", ".join(_patterns(module)),
        "mutants": total,
        "counts": counts,
        "kill_rate": killed / total if total else None,
        "seconds": round(seconds),
        "survived": sorted(n for n, s in statuses.items() if s != "killed"
                           and s != "timeout"),
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"some of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--max-children", type=int, default=2)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown modules {unknown}; choose among {', '.join(MODULES)}")
    rows = []
    # By default the exercise checker as a whole, not also file by file.
    default = [m for m in MODULES if not m.startswith("exercises/")]
    for module in args.modules or default:
        summary = run(module, args.max_children)
        rate = summary["kill_rate"]
        rows.append(summary)
        print(f"{summary['module']}: {summary['mutants']} mutants, "
              f"killed {0 if rate is None else rate:.1%}, {summary['counts']}, "
              f"{summary['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
