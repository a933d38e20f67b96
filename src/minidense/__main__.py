"""Command line: ``python -m minidense train ...`` and ``python -m minidense compare ...``.

This module only adapts argparse to the library: ``train``'s flags are generated from the fields of
the option groups (:mod:`minidense.settings`), with the same names as ``compare``'s ``--vary`` and
``--set`` keys (``--num-epochs``, ``--transition-pool``, ...; the older ``--epochs`` and ``--pool``
stay as aliases). Precedence of every setting: flag > profile named by ``--profile`` >
``MINIDENSE_PROFILE`` > the device default (``full`` with CUDA, else ``cpu``).
"""

import argparse
import contextlib
import datetime
import os
import sys
import typing
from pathlib import Path

import torch

from minidense import distributed
from minidense.data import load_fashion_mnist
from minidense.devices import resolve_device
from minidense.experiments import build_network
from minidense.files import atomic_write, check_writable
from minidense.options import Budget, Levers, Network, Parallel, Recipe, fields_of, parse_field
from minidense.profiles import PROFILES, profile
from minidense.rows import load_rows
from minidense.settings import NAMES, OLD_NAMES, Settings
from minidense.training import train

# Older spellings of train's flags, kept as aliases.
ALIASES = {"num_epochs": ["--epochs"], "transition_pool": ["--pool"]}


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _timestamp():
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def _flag(name):
    return "--" + name.replace("_", "-")


def _add_option_flags(group, cls):
    """One flag per field of an option group, its help the field's own; left out, the field stays unset."""
    for name, field in fields_of(cls).items():
        help_text = field.metadata["help"].replace("%", "%%")
        flags = [_flag(name), *ALIASES.get(name, [])]
        kind = typing.get_args(field.type) or (field.type,)
        if bool in kind:
            group.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            def parse(text, field=field):
                try:
                    return parse_field(field, text)
                except ValueError as error:
                    raise argparse.ArgumentTypeError(str(error)) from None
            parse.__name__ = name
            group.add_argument(*flags, dest=name, type=parse, default=None, metavar=name.upper(),
                               help=help_text)


def _options_from(args, names):
    """The settings among ``names`` given on the command line."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _train_parser(subparsers):
    parser = subparsers.add_parser("train", help="train the book's DenseNet on Fashion-MNIST",
                                   description="Train the book's DenseNet on Fashion-MNIST and write its "
                                               "History as JSON.")
    parser.add_argument("--profile", choices=list(PROFILES), help="budget (default: MINIDENSE_PROFILE, "
                        "else full with CUDA and cpu without)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the data order")
    parser.add_argument("--data", type=Path, help="data root (default: MINIDENSE_DATA, else ~/.cache/minidense)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu; under torchrun "
                        "each process its own GPU, cuda:LOCAL_RANK)")
    parser.add_argument("--backend", choices=list(distributed.BACKENDS), help="process-group backend under "
                        "torchrun (default: nccl on CUDA, gloo on CPU)")
    parser.add_argument("--out", type=Path, help="History JSON (default: runs/train-<profile>-<timestamp>.json)")
    parser.add_argument("--checkpoint", type=Path, help="model + optimiser + history, written after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists (the "
                        "recipe and the number of epochs must be the checkpoint's)")
    _add_option_flags(parser.add_argument_group("network", "the book's DenseNet (default: the book's)"), Network)
    _add_option_flags(parser.add_argument_group("budget", "how much training (default: the profile's)"), Budget)
    _add_option_flags(parser.add_argument_group("recipe", "how the weights are optimised (default: the "
                                                "recipe's)"), Recipe)
    levers = parser.add_argument_group("speed levers", "how fast, never what is computed; left out, decided for "
                                       "this machine")
    _add_option_flags(levers, Levers)
    levers.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="the old spelling of --precision bf16 (--no-bf16: --precision fp32)")
    _add_option_flags(parser.add_argument_group("several processes", "under torchrun --nproc_per_node=N -m "
                                                "minidense train ...: --batch-size is the global batch, split "
                                                "evenly over the N processes, at the single process's "
                                                "learning rate"), Parallel)
    parser.set_defaults(run=_run_train)
    return parser


def _run_train(args, parser):
    if args.resume and args.checkpoint is None:
        parser.error("--resume needs --checkpoint FILE")
    p = profile(args.profile)
    try:
        settings = Settings.of_profile(p).replace(**_options_from(args, (*NAMES, *OLD_NAMES)))
        parallel = Parallel(**_options_from(args, fields_of(Parallel)))
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    if args.device is not None:
        resolve_device(args.device)  # a device this machine lacks: refused before any data is read
    budget = settings.budget
    out = args.out or Path("runs") / f"train-{p.name}-{_timestamp()}.json"
    launched = distributed.launched()
    if args.backend is not None and not launched:
        parser.error("--backend is for runs started by torchrun (torchrun --nproc_per_node=N -m minidense train ...)")
    if launched:  # checked on every rank before any joins the others: none is left waiting
        device = resolve_device(args.device)
        distributed.check_run(parallel, device, budget.batch_size, world=int(os.environ["WORLD_SIZE"]))
    if not launched or os.environ["RANK"] == "0":
        _check_outputs(parser, out, args.checkpoint)
    with distributed.process_group(args.backend, args.device) if launched else \
            contextlib.nullcontext(args.device) as device:
        say = print if distributed.is_main() else (lambda *_: None)  # rank 0 alone prints
        say(f"{p.name} budget: {_describe(budget, settings.network)}")
        say(f"recipe: {settings.recipe}")
        world = distributed.world_size()
        if world > 1:
            say(f"{world} processes ({distributed.backend()}), each {budget.batch_size // world} images of every "
                f"batch of {budget.batch_size}")
        torch.manual_seed(args.seed)
        net = build_network(settings.network)
        with distributed.local_main_first():  # one download per machine, if the files are missing
            if settings.network.task == "rows":
                train_iter, test_iter = load_rows(budget.batch_size, budget.num_train, budget.num_test,
                                                  settings.network.max_items, root=args.data, device=device,
                                                  seed=args.seed)
            else:
                train_iter, test_iter = load_fashion_mnist(budget.batch_size, resize=budget.resize, root=args.data,
                                                           device=device, num_train=budget.num_train,
                                                           num_test=budget.num_test, seed=args.seed)
        history = train(net, train_iter, test_iter, budget.num_epochs, device=device, recipe=settings.recipe,
                        levers=settings.levers, parallel=parallel, checkpoint=args.checkpoint, resume=args.resume,
                        profile=p.name)
        history.provenance.update(**vars(settings.network), resize=budget.resize, recipe=budget.recipe,
                                  seed=args.seed)
        if distributed.is_main():  # one History, however many processes
            print(f"wrote {history.save(out)}")
    return history


def _describe(budget, network):
    """``"2 epochs, batch 128, 10,000 train / 2,000 test images at 96x96"`` (the rows task: rows of up to
    ``max_items`` garments, made from as many images)."""
    train_images, test_images = budget.images
    examples = (f"rows of up to {network.max_items} garments, {network.backbone} encoder" if network.task == "rows"
                else f"images at {budget.resize}x{budget.resize}")
    return (f"{budget.num_epochs} epochs, batch {budget.batch_size}, {train_images:,} train / {test_images:,} "
            f"test {examples}")


def _check_outputs(parser, out, checkpoint):
    """Refuse before any training: --out and --checkpoint the same file, or a path that cannot be written."""
    if checkpoint is not None and Path(out).resolve() == Path(checkpoint).resolve():
        parser.error(f"--out and --checkpoint are the same file ({out}): the History would replace the checkpoint")
    for path in (out, checkpoint):
        if path is not None:
            try:
                check_writable(path)
            except OSError as error:
                parser.error(str(error))


def _compare_parser(subparsers):
    parser = subparsers.add_parser(
        "compare", help="train variants of the book's DenseNet over several seeds and compare them",
        description="Train every combination of the --vary values with every seed (same initial weights "
                    "and data order per seed), then print mean ± std and paired differences with 95%% "
                    "confidence intervals. Writes one record per finished run under runs/, results.csv "
                    "(every run in the folder), summary.csv and curves.png (this call's runs); rerunning "
                    "with the same --out skips runs already recorded with the same settings.")
    parser.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                        help="a setting and its values, e.g. transition_pool=avg,max or growth_rate=16,32 or "
                             "convs_per_block=2-2-2-2,4-4-4-4 or recipe=d2l,book; several --vary make a grid. "
                             f"Keys: {', '.join(NAMES)} (the flags of train, documented in its --help)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting every variant shares, e.g. resize=48 (same keys as --vary)")
    parser.add_argument("--seeds", type=_positive(int), default=3, help="number of seeds, 0..N-1 (default 3)")
    parser.add_argument("--profile", choices=list(PROFILES), help="budget (default: MINIDENSE_PROFILE, "
                        "else full with CUDA and cpu without)")
    parser.add_argument("--metric", default="test_acc", help="the metric the summary compares (default test_acc)")
    parser.add_argument("--baseline", help="the variant the others are compared with (default: the first)")
    parser.add_argument("--data", type=Path, help="data root (default: MINIDENSE_DATA, else ~/.cache/minidense)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--out", type=Path, help="folder (default: runs/compare-<timestamp>/)")
    parser.add_argument("--checkpoints", type=Path, help="folder where each run keeps a checkpoint while it "
                        "trains, so that an interrupted run resumes from its last epoch (default: none)")
    parser.set_defaults(run=_run_compare)
    return parser


METRICS = ("test_acc", "train_acc", "train_loss", "examples_per_sec", "wall_seconds", "num_params")


def _run_compare(args, parser):
    from minidense import experiments, grids, stats
    from minidense.plot import compare_curves

    if distributed.launched():
        parser.error("compare runs each of its runs in one process and does not run under torchrun: start it "
                     "with python -m minidense compare ..., or train a variant on several processes with "
                     "torchrun ... -m minidense train ...")
    try:
        variants = grids.variants(args.vary, args.set)
        if args.metric not in METRICS and not args.metric.startswith("test_acc_"):
            raise ValueError(f"--metric {args.metric!r}: choose one of {', '.join(METRICS)} (or a test_acc_* "
                             "column of an averaged or test-time-augmented recipe)")
        if args.baseline is not None and args.baseline not in variants:
            raise ValueError(f"--baseline {args.baseline!r} is not one of the variants: {', '.join(variants)}")
    except ValueError as error:
        parser.error(str(error))
    p = profile(args.profile)
    out = args.out or Path("runs") / f"compare-{_timestamp()}"
    run_one = experiments.FashionMNISTRun(p, device=args.device, root=args.data, checkpoints=args.checkpoints)
    print(f"{p.name} budget: {p.num_epochs} epochs, batch {p.batch_size}, recipe {p.recipe!r}")
    for name, settings in variants.items():
        full = run_one.resolve(settings)
        print(f"{name}: {_describe(full.budget, full.network)}; recipe {full.recipe}")
    print(f"{len(variants)} variants x {args.seeds} seeds -> {out}")
    table = experiments.compare(variants, seeds=range(args.seeds), profile=p, out=out, run_one=run_one)
    if args.metric not in table.columns:
        parser.exit(2, f"python -m minidense compare: error: the runs have no column {args.metric!r}\n")
    summary = stats.summarize(table, metric=args.metric, baseline=args.baseline)
    atomic_write(out / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
    figure = compare_curves(table, metric=args.metric if args.metric in experiments.epochs_long(table)
                            else "test_acc", title=f"profile {p.name}, {args.seeds} seeds").figure
    atomic_write(out / "curves.png", lambda tmp: figure.savefig(tmp, dpi=120, format="png"))
    print(stats.format_summary(summary))
    print(f"wrote {out / 'results.csv'}, {out / 'summary.csv'}, {out / 'curves.png'}")
    return table


def command_parser():
    """The parser of ``python -m minidense``: its ``train`` and ``compare`` commands."""
    parser = argparse.ArgumentParser(prog="python -m minidense", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _train_parser(subparsers)
    _compare_parser(subparsers)
    return parser


def main(argv=None):
    parser = command_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args, parser)
    except (ValueError, FileNotFoundError, OSError) as error:
        parser.exit(2, f"python -m minidense {args.command}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
