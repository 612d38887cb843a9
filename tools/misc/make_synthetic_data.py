"""Write the synthetic detection (COCO format) and segmentation (ADE20k layout) sets.

    python tools/misc/make_synthetic_data.py --out data/synthetic [--num-train 200 --num-val 50 --seed 0]
creates data/synthetic/det and data/synthetic/seg; the same seed gives the same files.
``--task halves`` (default) is the demo task, ``--task layout`` the encoding study's
(absolute image half + relative layout, objects sized relative to the image; see
mmpe/datasets/synthetic.py), e.g.
    python tools/misc/make_synthetic_data.py --task layout --out data/layout --height 128 --width 160
"""
import argparse
import os.path as osp

from mmpe.datasets import TASKS, generate_detection_set, generate_segmentation_set


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/synthetic')
    parser.add_argument('--task', default='halves', choices=list(TASKS))
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    kwargs = dict(num_train=args.num_train, num_val=args.num_val, height=args.height, width=args.width,
                  seed=args.seed, task=args.task)
    generate_detection_set(osp.join(args.out, 'det'), **kwargs)
    generate_segmentation_set(osp.join(args.out, 'seg'), **kwargs)
    print(f'wrote {osp.join(args.out, "det")} (COCO) and {osp.join(args.out, "seg")} (ADE20k layout)')


if __name__ == '__main__':
    main()
