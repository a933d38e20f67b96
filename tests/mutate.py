"""Mutation check: do the tests fail when the library is wrong?

Each mutant is one small change to one module of ``src/minidense/``, made in a private copy of
``src/``, ``tests/``, ``benchmarks/`` and ``book/results/`` (the working tree is never touched). For
each mutant the module's fast tests run (``-x``, a timeout); the mutant is *killed* when they fail,
and *survives* when they pass.
A survivor is either a missing test or an equivalent change (one that computes the same thing);
either way it deserves a look.

Two kinds of mutants:

* ``auto``: one operator, keyword or number at a time, found with ``tokenize`` (``<`` -> ``<=``,
  ``+`` -> ``-``, ``and`` -> ``or``, ``True`` -> ``False``, ``not`` dropped, ``2`` -> ``3``, ...),
  skipping strings, docstrings, comments and lines marked ``# pragma: no mutate``;
* ``named``: the meaningful bugs listed in :data:`NAMED` below (a lever that does nothing, a model
  setting ignored, an order seeded with ``seed + epoch``, ...), each with the tests that must catch it.

Usage (from the repository root; on a shared machine prefix ``OMP_NUM_THREADS=1 nice -n 10``)::

    python tests/mutate.py                                   # named mutants of every module
    python tests/mutate.py --auto options.py data.py         # plus every automatic mutant of these
    python tests/mutate.py --auto training.py --only-auto --timeout 300
    python tests/mutate.py --list --auto data.py             # show the mutants, run nothing

The data-dependent tests find Fashion-MNIST as the suite does (``MINIDENSE_DATA``, ...), with
``CI=true``: a mutant that breaks reading the files fails them instead of making them skip. Each
mutant runs in a process forked from one that has already imported torch and pytest (the
library itself is imported afresh in each child, from the mutated copy), with bytecode caching
off. The exit status is 1 when a mutant survived, 0 when all were killed.
"""

import argparse
import io
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import tokenize
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-m", "not slow"]

# The fast tests that guard each module.
TESTS = {
    "options.py": ["tests/test_options.py", "tests/test_profiles.py", "tests/test_settings.py", "tests/test_main.py"],
    "data.py": ["tests/test_data.py"],
    "training.py": ["tests/test_training.py", "tests/test_history.py"],
    "hardware.py": ["tests/test_hardware.py"],
    "allocator.py": ["tests/test_allocator.py"],
    "experiments.py": ["tests/test_experiments.py", "tests/test_experiments.py"],
    "settings.py": ["tests/test_settings.py", "tests/book/test_record_keys.py"],
    "grids.py": ["tests/test_grids.py", "tests/test_main.py"],
    "stats.py": ["tests/test_stats.py"],
    "runs.py": ["tests/test_runs.py"],
    "files.py": ["tests/test_files.py"],
    "checkpoints.py": ["tests/test_checkpoints.py"],
    "precision.py": ["tests/test_precision.py"],
    "devices.py": ["tests/test_devices.py"],
}
RESUME = ["tests/test_checkpoints.py"]  # the resume tests (one is marked slow)


@dataclass
class Mutant:
    module: str  # file name under src/minidense/
    old: str  # the exact text replaced (must occur once in the file, or at `offset`)
    new: str
    why: str
    tests: tuple = ()  # default: TESTS[module]
    slow: bool = False  # also run the tests marked slow
    offset: int | None = None  # character offset of `old` (automatic mutants)
    line: int | None = None


NAMED = [
    # experiments.py
    Mutant("experiments.py", "    return densenet(**blocks)\n",
           "    return densenet(transition_pool=network.transition_pool)\n",
           "FashionMNISTRun.build ignores every model setting but the pooling", ("tests/test_experiments.py",)),
    # the levers
    Mutant("training.py", "X, y, levers=settings.levers,\n", "X, y, levers=settings.levers.replace(bf16=False),\n",
           "the bf16 lever does nothing while training", ("tests/test_training.py",)),
    # (Only the input batches' format, `memory_format = levers.memory_format` in train, is an
    # equivalent mutant: a one-channel NCHW batch already is channels-last contiguous.)
    Mutant("training.py", "    net.to(device, memory_format=levers.memory_format)\n", "    net.to(device)\n",
           "the channels-last lever does nothing", ("tests/test_training.py",)),
    Mutant("training.py", "net, test_iter, settings.device, levers=settings.levers, tta=tta)",
           "net, test_iter, settings.device, levers=settings.levers.replace(bf16=False), tta=tta)",
           "evaluation ignores the bf16 lever", ("tests/test_training.py",)),
    # seeding and augmentation
    Mutant("data.py", "manual_seed(self.seed * 1_000_003 + epoch)", "manual_seed(self.seed + epoch)",
           "the epoch order seeded with seed + epoch", ("tests/test_data.py",)),
    Mutant("data.py", "SeedSequence([self.seed, epoch, 1])", "SeedSequence([self.seed + epoch, 1])",
           "the augmentation seeded with seed + epoch", ("tests/test_data.py",)),
    Mutant("data.py", "shifts[start:start + self.batch_size],\n", "shifts[:len(idx)],\n",
           "every batch reuses the first draws: the augmentation depends on the batch size",
           ("tests/test_data.py",)),
    Mutant("data.py", "return shifts, flips & self.flip", "return shifts, flips",
           "images flipped although flip=False", ("tests/test_data.py",)),
    Mutant("data.py", "cols = torch.where(flips.to(device)[:, None], W - 1 - cols, cols)",
           "cols = torch.where(flips.to(device)[:, None], cols, cols)", "shift_and_flip never flips",
           ("tests/test_data.py",)),
    Mutant("data.py", "rows = pad - shifts[:, :1].to(device)", "rows = pad + shifts[:, :1].to(device)",
           "shift_and_flip shifts up instead of down", ("tests/test_data.py",)),
    Mutant("data.py", "antialias=resize < X.shape[-1]", "antialias=False",
           "shrinking without antialiasing", ("tests/test_data.py",)),
    # schedules
    Mutant("training.py", "cycle_momentum=False", "cycle_momentum=True", "one-cycle cycles the momentum",
           ("tests/test_training.py",)),
    Mutant("training.py", "milestones = [int(total_steps * 0.5), int(total_steps * 0.75)]",
           "milestones = [int(total_steps * 0.3), int(total_steps * 0.6)]", "the step schedule's milestones at 30%/60%",
           ("tests/test_training.py",)),
    Mutant("training.py", "CosineAnnealingLR(optimizer, T_max=total_steps)",
           "CosineAnnealingLR(optimizer, T_max=total_steps // 2)", "cosine over half the run",
           ("tests/test_training.py",)),
    Mutant("training.py", "        optimisation.after_step(net)\n",
           "        if i == 0:\n            optimisation.after_step(net)\n",
           "the schedule stepped once per epoch instead of every batch", ("tests/test_training.py",)),
    # label smoothing, TTA, EMA
    Mutant("training.py", "label_smoothing=settings.recipe.label_smoothing,",
           "label_smoothing=0.0,", "train drops the label smoothing",
           ("tests/test_training.py",)),
    Mutant("training.py",
           "probabilities = F.softmax(net(X).float(), dim=1) + F.softmax(net(X.flip(-1)).float(), dim=1)",
           "probabilities = F.softmax(net(X).float() + net(X.flip(-1)).float(), dim=1) * 2",
           "TTA averages the logits instead of the probabilities", ("tests/test_training.py",)),
    Mutant("training.py", "F.softmax(net(X.flip(-1)).float(), dim=1)", "F.softmax(net(X.flip(-2)).float(), dim=1)",
           "TTA mirrors top to bottom", ("tests/test_training.py",)),
    Mutant("training.py", "keep = torch.clamp((1 + n) / (10 + n), max=decay)",
           "keep = torch.clamp(n / (10 + n), max=decay)",
           "the EMA's warm-up off by one update", ("tests/test_training.py",)),
    Mutant("training.py", "keep = torch.clamp((1 + n) / (10 + n), max=decay)", "keep = (1 + n) / (10 + n)",
           "the EMA's warm-up never stops at the decay", ("tests/test_training.py",)),
    # resume
    Mutant("checkpoints.py", '        _set_rng_states(state["rng"])\n', "        pass\n",
           "resume without the RNG state (dropout draws differ)", RESUME, slow=True),
    Mutant("training.py", '            self.ema.load_state_dict(state["ema"])\n', "            pass\n",
           "resume without the averaged weights", RESUME, slow=True),
    Mutant("training.py", '            self.scheduler.load_state_dict(state["scheduler"])\n', "            pass\n",
           "resume restarts the schedule", RESUME, slow=True),
    Mutant("training.py", '        self.optimizer.load_state_dict(state["optimizer"])\n', "        pass\n",
           "resume loses the momentum buffers", RESUME, slow=True),
]

# Automatic mutants known to be equivalent (they compute the same thing; checked by hand):
# * stats.py, `n > 1` -> `n >= 1` in the std and the half-width: with one seed pandas' std (ddof=1) is
#   NaN and so is the t quantile of 0 degrees of freedom, as the `else` branch gives;
# * stats.py, `itertuples(index=False)` -> `True`: format_summary reads each row's fields by name.

# Automatic mutants: operator -> replacements; keywords; numbers.
OPERATORS = {"<": ["<="], "<=": ["<"], ">": [">="], ">=": [">"], "==": ["!="], "!=": ["=="],
             "+": ["-"], "-": ["+"], "*": ["/"], "/": ["*"], "//": ["/"], "%": ["//"], "&": ["|"], "|": ["&"],
             "+=": ["-="], "-=": ["+="]}
KEYWORDS = {"and": ["or"], "or": ["and"], "True": ["False"], "False": ["True"], "is": ["is not"],
            "in": ["not in"], "not": [""], "None": ["0"], "min": ["max"], "max": ["min"], "break": ["continue"]}


def automatic_mutants(module):
    source = (ROOT / "src" / "minidense" / module).read_text()
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    mutants = []
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, token in enumerate(tokens):
        row, col = token.start
        line = lines[row - 1] if row <= len(lines) else ""
        if row > len(lines) or "pragma: no mutate" in line or line.lstrip().startswith(("__all__", "@")):
            continue
        previous = tokens[i - 1].string if i else ""
        following = tokens[i + 1].string if i + 1 < len(tokens) else ""
        if "None" in (previous, following) and "|" in (token.string, previous, following):
            continue  # a type annotation (`str | None`), not code
        if token.type == tokenize.OP:
            replacements = OPERATORS.get(token.string, [])
        elif token.type == tokenize.NAME:
            replacements = KEYWORDS.get(token.string, [])
            if token.string in ("in", "is") and "not" in (previous, following):
                replacements = []  # `not in` / `is not`: dropping the `not` covers them
            if token.string in ("min", "max") and following not in ("(", "="):
                replacements = []  # only calls (and clamp's keyword), not other names
        elif token.type == tokenize.NUMBER:
            value = eval(token.string)  # a literal
            replacements = [str(value + 1)] if isinstance(value, int) else \
                [repr(value * 2 if value else 1.0)] if isinstance(value, float) else []
        else:
            continue
        offset = starts[row - 1] + col
        for new in replacements:
            mutant = Mutant(module, token.string, new, f"line {row}: {lines[row - 1].strip()[:90]}",
                            offset=offset, line=row)
            try:  # `for x not in y`, `f(/args)` and the like are not programs: skip them
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # `x is 0` and the like: mutants, not mistakes
                    compile(apply(mutant, source), module, "exec")
            except SyntaxError:
                continue
            mutants.append(mutant)
    return mutants


def apply(mutant, source):
    if mutant.offset is not None:
        mutated = source[:mutant.offset] + mutant.new + source[mutant.offset + len(mutant.old):]
        if mutant.old == "not" and mutant.new == "":
            mutated = source[:mutant.offset] + source[mutant.offset + 4:]
        return mutated
    count = source.count(mutant.old)
    if count != 1:
        raise ValueError(f"{mutant.module}: {mutant.old!r} occurs {count} times (expected once): "
                         f"update NAMED in tests/mutate.py")
    return source.replace(mutant.old, mutant.new)


def _child(copy, module, mutated, tests, slow, log):
    """Runs in the forked process: write the mutant, import the library from the copy, run pytest."""
    sys.dont_write_bytecode = True
    os.environ["CI"] = "true"  # a mutant that breaks reading the data must fail the data tests, not skip them
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    path = copy / "src" / "minidense" / module
    path.write_text(mutated)
    sys.path.insert(0, str(copy / "src"))
    sys.path.insert(0, str(copy / "tests"))
    os.chdir(copy)
    import minidense

    if not Path(minidense.__file__).resolve().is_relative_to(copy.resolve()):
        print(f"minidense imported from {minidense.__file__}, not from the copy", flush=True)
        os._exit(99)
    import pytest

    args = [a for a in PYTEST_ARGS if not (slow and a in ("-m", "not slow"))]
    code = pytest.main([*args, "--rootdir", str(copy), *tests])
    sys.stdout.flush()
    os._exit(int(code))


WALL_CAP = 3600  # seconds of wall-clock time per mutant, whatever the load


def _cpu_seconds(pid):
    """CPU seconds (user + system) used so far by process ``pid`` (Linux's /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Running:
    """One mutant under test in a forked child, in the copy ``copy`` (one copy per child at a time)."""

    def __init__(self, mutant, copy, logs):
        self.mutant, self.copy, self.outcome = mutant, copy, None
        self.original = (ROOT / "src" / "minidense" / mutant.module).read_text()
        self.start = time.perf_counter()
        try:
            mutated = self.original if mutant.old is None else apply(mutant, self.original)
        except ValueError as error:  # the code changed under a named mutant: NAMED needs updating
            self.outcome = f"stale ({error})"
            return
        tests = list(mutant.tests or TESTS[mutant.module])
        self.log = logs / f"{len(list(logs.iterdir())):04d}.log"
        self.log.touch()
        context = multiprocessing.get_context("fork")
        self.process = context.Process(target=_child, args=(copy, mutant.module, mutated, tests, mutant.slow,
                                                            str(self.log)))
        self.process.start()

    def done(self, timeout):
        """Whether the outcome is known (killing the child past its time).

        The timeout counts the child's CPU seconds, not wall seconds: on a loaded machine a niced
        child may wait minutes for a core, which says nothing about the mutant. A hang that burns
        no CPU is caught by the wall-clock cap.
        """
        if self.outcome is not None:
            return True
        process = self.process
        if process.is_alive():
            if _cpu_seconds(process.pid) < timeout and time.perf_counter() - self.start < WALL_CAP:
                return False
            process.kill()
            process.join()
            self.outcome = "timeout"
        else:
            process.join()
            code = process.exitcode
            # 1: a test failed; 3: an error in a test or a fixture (say, on import)
            self.outcome = "survived" if code == 0 else "killed" if code in (1, 3) else \
                f"error (exit {code}, see {self.log})"
        (self.copy / "src" / "minidense" / self.mutant.module).write_text(self.original)
        self.seconds = time.perf_counter() - self.start
        return True


def run_all(mutants, copies, timeout, logs, report=None):
    """Every mutant, ``len(copies)`` at a time; ``[(outcome, seconds)]`` in the order given."""
    results, running, queue, free = {}, [], list(enumerate(mutants)), list(copies)
    while queue or running:
        while queue and free:
            i, mutant = queue.pop(0)
            running.append((i, Running(mutant, free.pop(), logs)))
        time.sleep(0.2)
        for item in list(running):
            i, job = item
            if job.done(timeout):
                running.remove(item)
                free.append(job.copy)
                results[i] = (job.outcome, getattr(job, "seconds", 0.0))
                if report is not None:
                    report(i, mutants[i], *results[i])
    return [results[i] for i in range(len(mutants))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules of src/minidense/ whose named mutants to run "
                                                   "(default: all); with --auto, their automatic ones too")
    parser.add_argument("--auto", action="store_true", help="also every automatic mutant of the modules given")
    parser.add_argument("--only-auto", action="store_true", help="only the automatic mutants")
    parser.add_argument("--timeout", type=float, default=120,
                        help="CPU seconds per mutant (default 120; the wall clock is capped at an hour)")
    parser.add_argument("--lines", default=None,
                        help="only the automatic mutants on these lines, like 94,152-172 (say, the survivors of a run)")
    parser.add_argument("--match", default=None, help="only the mutants whose description contains this text")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once, each in its own copy (default 1)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--logs", default=None, help="folder for each mutant's pytest output (default: a temp folder)")
    args = parser.parse_args(argv)
    modules = args.modules or sorted({m.module for m in NAMED})
    for module in modules:
        if module not in TESTS:
            parser.error(f"no tests listed for {module!r} in TESTS; choose from {', '.join(TESTS)}")
    mutants = [] if args.only_auto else [m for m in NAMED if m.module in modules]
    if args.auto or args.only_auto:
        for module in modules:
            mutants += automatic_mutants(module)
    if args.lines:
        wanted = set()
        for part in args.lines.split(","):
            low, _, high = part.partition("-")
            wanted.update(range(int(low), int(high or low) + 1))
        mutants = [m for m in mutants if m.line in wanted]
    if args.match:
        mutants = [m for m in mutants if args.match in m.why]
    if args.list:
        for m in mutants:
            print(f"{m.module}: {m.old!r} -> {m.new!r}  ({m.why})")
        print(f"{len(mutants)} mutants")
        return 0

    import pytest  # noqa: F401  (imported once here, inherited by every forked child)
    import torch  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="minidense-mutants-") as tmp:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        copies = []
        for j in range(args.jobs):
            copy = Path(tmp) / f"repo{j}"
            shutil.copytree(ROOT / "src", copy / "src", ignore=ignore)
            shutil.copytree(ROOT / "tests", copy / "tests", ignore=ignore)
            shutil.copytree(ROOT / "benchmarks", copy / "benchmarks", ignore=ignore)  # the d2l reference network
            shutil.copytree(ROOT / "book" / "results", copy / "book" / "results")  # the recorded runs' keys
            shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
            copies.append(copy)
        logs = Path(args.logs) if args.logs else Path(tmp) / "logs"
        logs.mkdir(parents=True, exist_ok=True)

        # the unmutated code must pass, or every mutant looks killed
        baselines = [Mutant(module, None, None, f"baseline {module}") for module in modules]
        for m, (outcome, seconds) in zip(baselines, run_all(baselines, copies, args.timeout, logs)):
            if outcome != "survived":
                kept = Path(tempfile.gettempdir()) / "minidense-mutants-logs"
                shutil.copytree(logs, kept, dirs_exist_ok=True)
                print(f"{m.why}: the tests fail on the unmutated code ({outcome}); logs in {kept}")
                return 2
            print(f"{m.why}: tests pass in {seconds:.1f} s", flush=True)

        def report(i, m, outcome, seconds):
            where = f"{m.module}:{m.line}" if m.line else m.module
            print(f"[{i + 1}/{len(mutants)}] {outcome:8s} {seconds:5.1f} s  {where}  {m.old!r} -> {m.new!r}  {m.why}",
                  flush=True)

        outcomes = run_all(mutants, copies, args.timeout, logs, report)
        survivors = [(outcome, m) for m, (outcome, _) in zip(mutants, outcomes) if outcome != "killed"]
        print(f"\n{len(mutants) - len(survivors)} of {len(mutants)} mutants killed")
        for outcome, m in survivors:
            where = f"{m.module}:{m.line}" if m.line else m.module
            print(f"  {outcome}: {where}  {m.old!r} -> {m.new!r}  {m.why}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
