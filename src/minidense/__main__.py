"""Command line: ``python -m minidense train ...`` and ``python -m minidense compare ...``.

Precedence of every setting: flag > profile named by ``--profile`` > ``MINIDENSE_PROFILE`` >
the device default (``full`` with CUDA, else ``cpu``).
"""

import argparse
import datetime
import sys
from pathlib import Path

import torch

from minidense.blocks import POOLS
from minidense.data import load_fashion_mnist
from minidense.models import densenet
from minidense.profiles import PROFILES, profile
from minidense.training import train


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


def _train_parser(subparsers):
    parser = subparsers.add_parser("train", help="train the book's DenseNet on Fashion-MNIST",
                                   description="Train the book's DenseNet on Fashion-MNIST and write its "
                                               "History as JSON.")
    parser.add_argument("--profile", choices=list(PROFILES), help="budget (default: MINIDENSE_PROFILE, "
                        "else full with CUDA and cpu without)")
    parser.add_argument("--epochs", type=_positive(int), help="number of epochs (default: the profile's)")
    parser.add_argument("--lr", type=_positive(float), help="learning rate (default: the profile's)")
    parser.add_argument("--batch-size", type=_positive(int), help="batch size (default: the profile's)")
    parser.add_argument("--pool", choices=list(POOLS), default="avg", help="pooling in the transitions")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the data order")
    parser.add_argument("--data", type=Path, help="data root (default: MINIDENSE_DATA, else ~/.cache/minidense)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--out", type=Path, help="History JSON (default: runs/train-<profile>-<timestamp>.json)")
    parser.add_argument("--checkpoint", type=Path, help="model + optimiser + history, written after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    levers = parser.add_argument_group("speed levers", "defaults: probed on this machine (--channels-last, "
                                       "--bf16) or measured (the chapter \"Making training fast\")")
    levers.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels-last memory format (default: probed)")
    levers.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: where the hardware runs bf16 natively)")
    levers.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                        help="torch.compile the network (default: off; refused under the smoke profile)")
    levers.add_argument("--eval-batch-size", type=_positive(int),
                        help="evaluation batch (default: the training batch on a CPU; on a GPU 4 x it, "
                             "at most 1024)")
    levers.add_argument("--inplace-relu", action=argparse.BooleanOptionalAction, default=True,
                        help="ReLUs after a BatchNorm work in place (default: on)")
    levers.add_argument("--host-sync", action=argparse.BooleanOptionalAction, default=False,
                        help="read metrics back after every step, as d2l does (default: off)")
    levers.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=None,
                        help="malloc keeps freed memory for the next step instead of the kernel zeroing it "
                             "again (default: on for a CPU; Linux with glibc)")
    parser.set_defaults(run=_run_train)
    return parser


def _run_train(args, parser):
    if args.resume and args.checkpoint is None:
        parser.error("--resume needs --checkpoint FILE")
    p = profile(args.profile)
    num_epochs = args.epochs or p.num_epochs
    lr = args.lr or p.lr
    batch_size = args.batch_size or p.batch_size
    out = args.out or Path("runs") / f"train-{p.name}-{_timestamp()}.json"
    print(p)
    torch.manual_seed(args.seed)
    net = densenet(transition_pool=args.pool)
    train_iter, test_iter = load_fashion_mnist(batch_size, resize=p.resize, root=args.data, device=args.device,
                                               num_train=p.num_train, num_test=p.num_test, seed=args.seed)
    history = train(net, train_iter, test_iter, num_epochs, lr, device=args.device,
                    checkpoint=args.checkpoint, resume=args.resume, channels_last=args.channels_last,
                    bf16=args.bf16, compile=args.compile, eval_batch_size=args.eval_batch_size,
                    inplace_relu=args.inplace_relu, host_sync=args.host_sync,
                    keep_freed_memory=args.keep_freed_memory, **p.train_options())
    history.provenance.update(pool=args.pool, seed=args.seed)
    print(f"wrote {history.save(out)}")
    return history


def _compare_parser(subparsers):
    parser = subparsers.add_parser(
        "compare", help="train variants of the book's DenseNet over several seeds and compare them",
        description="Train every combination of the --vary values with every seed (same initial weights "
                    "and data order per seed), then print mean ± std and paired differences with 95%% "
                    "confidence intervals. Writes results.csv (one row per finished run), summary.csv "
                    "and curves.png; rerunning with the same --out skips finished runs.")
    parser.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                        help="a setting and its values, e.g. transition_pool=avg,max or growth_rate=16,32 or "
                             "convs_per_block=2-2-2-2,4-4-4-4; several --vary make a grid. Keys: "
                             "transition_pool, growth_rate, convs_per_block, num_epochs, lr, batch_size, "
                             "num_train, num_test, resize, schedule, momentum, nesterov, weight_decay, "
                             "precise_bn, bf16, channels_last")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting every variant shares, e.g. resize=48 (same keys as --vary)")
    parser.add_argument("--seeds", type=_positive(int), default=3, help="number of seeds, 0..N-1 (default 3)")
    parser.add_argument("--profile", choices=list(PROFILES), help="budget (default: MINIDENSE_PROFILE, "
                        "else full with CUDA and cpu without)")
    parser.add_argument("--metric", default="test_acc", help="the metric the summary compares (default test_acc)")
    parser.add_argument("--data", type=Path, help="data root (default: MINIDENSE_DATA, else ~/.cache/minidense)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--out", type=Path, help="folder (default: runs/compare-<timestamp>/)")
    parser.set_defaults(run=_run_compare)
    return parser


def _run_compare(args, parser):
    from minidense import experiments
    from minidense.plot import compare_curves

    try:
        varied = experiments.parse_vary(args.vary)
        variants = experiments.grid(**varied)
        shared = experiments.parse_vary(args.set) if args.set else {}
        for key, values in shared.items():
            if len(values) != 1:
                raise ValueError(f"--set {key}: give one value (to compare several, use --vary)")
            if key in varied:
                raise ValueError(f"--set {key}: {key!r} is also varied")
        for settings in variants.values():
            settings.update({key: values[0] for key, values in shared.items()})
    except ValueError as error:
        parser.error(str(error))
    p = profile(args.profile)
    out = args.out or Path("runs") / f"compare-{_timestamp()}"
    run_one = experiments.FashionMNISTRun(p, device=args.device, root=args.data)
    print(p)
    print(f"{len(variants)} variants x {args.seeds} seeds -> {out}")
    table = experiments.compare(variants, seeds=range(args.seeds), profile=p, out=out, run_one=run_one)
    summary = experiments.summarize(table, metric=args.metric)
    summary.to_csv(out / "summary.csv", index=False)
    compare_curves(table, metric=args.metric if args.metric in experiments.epochs_long(table) else "test_acc",
                   title=f"profile {p.name}, {args.seeds} seeds").savefig(out / "curves.png", dpi=120)
    print(experiments.format_summary(summary))
    print(f"wrote {out / 'results.csv'}, {out / 'summary.csv'}, {out / 'curves.png'}")
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minidense", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _train_parser(subparsers)
    _compare_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        args.run(args, parser)
    except (ValueError, FileNotFoundError, OSError) as error:
        parser.exit(2, f"python -m minidense {args.command}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
