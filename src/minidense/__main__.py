"""Command line: ``python -m minidense train ...``.

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
                        help="evaluation batch (default: 4 x the training batch, at most 1024)")
    levers.add_argument("--inplace-relu", action=argparse.BooleanOptionalAction, default=True,
                        help="ReLUs after a BatchNorm work in place (default: on)")
    levers.add_argument("--host-sync", action=argparse.BooleanOptionalAction, default=False,
                        help="read metrics back after every step, as d2l does (default: off)")
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
                    inplace_relu=args.inplace_relu, host_sync=args.host_sync, **p.train_options())
    history.provenance.update(pool=args.pool, seed=args.seed)
    print(f"wrote {history.save(out)}")
    return history


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minidense", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _train_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        args.run(args, parser)
    except (ValueError, FileNotFoundError, OSError) as error:
        parser.exit(2, f"python -m minidense {args.command}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
