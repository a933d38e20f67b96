"""Started by tests/test_distributed.py under torchrun: each rank trains the tests' tiny network with
``minidense.train`` on a few images, then writes what it ends with to ``OUT/rank<r>.pt``.

Not a test module (pytest collects ``test_*.py`` only); run it as
``torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py --data DIR --out DIR``.
"""

import argparse
from pathlib import Path

import torch

import minidense
from minidense import distributed
from minidense.options import Levers, Recipe

NUM_TRAIN, NUM_TEST, BATCH, RESIZE = 128, 64, 32, 32  # 4 steps per epoch, 16 images per rank and step
# Momentum, Nesterov, weight decay, a schedule, augmentation and precise BN: every part of a step and
# of the evaluation that sharding could get wrong.
RECIPE = Recipe(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", precise_bn=2,
                translate=1, flip=True)
LEVERS = Levers(bf16=False, channels_last=False)  # fp32, the default layout: the reference replays it exactly


class Interrupted(Exception):
    """What the worker raises to stand for an interruption (a kill, a lost machine) on rank 0."""


def tiny_densenet():
    torch.manual_seed(0)
    return minidense.densenet(growth_rate=8, convs_per_block=(2, 2))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--interrupt-after", type=int, help="rank 0 fails early in the next epoch")
    args = parser.parse_args()

    def callback(x, values):
        if args.interrupt_after is not None and x > args.interrupt_after:
            raise Interrupted(f"interrupted at epoch {x:.2f}")

    with distributed.process_group() as device:
        net = tiny_densenet()
        train_iter, test_iter = minidense.load_fashion_mnist(BATCH, resize=RESIZE, root=args.data, device=device,
                                                             num_train=NUM_TRAIN, num_test=NUM_TEST, seed=0)
        history = minidense.train(net, train_iter, test_iter, args.epochs, device=device, recipe=RECIPE,
                                  levers=LEVERS, checkpoint=args.checkpoint, resume=args.resume,
                                  callback=callback, progress=False, verbose=False)
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save({"state": net.state_dict(), "history": history.to_dict()},
                   args.out / f"rank{distributed.rank()}.pt")


if __name__ == "__main__":
    main()
