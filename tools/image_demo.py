"""Draw a detector's or segmentor's predictions on images (mmdet's demo/image_demo.py arguments).

    python tools/image_demo.py INPUTS MODEL [--weights CKPT] [--out-dir outputs] [--device cpu]
                               [--pred-score-thr 0.3] [--batch-size 1] [--no-save-vis] [--no-save-pred]
INPUTS: image files and/or folders. MODEL: a config file, a config name ('mmpe::dino/<config>.py'),
or a checkpoint of tools/train.py (which holds its config). The config's default_scope picks mmdet's
DetInferencer (boxes drawn by DetLocalVisualizer into OUT_DIR/vis, every box in OUT_DIR/preds/*.json)
or mmseg's MMSegInferencer (class colours blended by SegLocalVisualizer into OUT_DIR/vis, class-index
maps in OUT_DIR/pred).
"""
import argparse

import mmpe  # noqa: F401  (compatibility fixes, model registration, 'mmpe::' config names)
from mmpe.engine.inference import build_inferencer, predict_images


def main():
    parser = argparse.ArgumentParser(description="Draw a detector's or segmentor's predictions on images")
    parser.add_argument('inputs', nargs='+', help='image files or folders of images')
    parser.add_argument('model', help="config file, config name ('mmpe::dino/<config>.py') or checkpoint (.pth)")
    parser.add_argument('--weights', help='checkpoint file (not needed when MODEL is one)')
    parser.add_argument('--out-dir', default='outputs', help='where vis/ and preds/ (pred/ for segmentors) go')
    parser.add_argument('--device', help='e.g. cpu, cuda:0 (default: CUDA when available)')
    parser.add_argument('--pred-score-thr', type=float, default=0.3, help='detectors: draw boxes of this score or more')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--show', action='store_true', help='also display each image in a window')
    parser.add_argument('--no-save-vis', action='store_true', help='do not write the drawn images')
    parser.add_argument('--no-save-pred', action='store_true', help='do not write the raw predictions')
    parser.add_argument('--palette', default='none', choices=['coco', 'voc', 'citys', 'random', 'none'],
                        help="detectors: box colours ('none': the dataset's)")
    parser.add_argument('--opacity', type=float, default=0.8, help='segmentors: opacity of the class colours')
    parser.add_argument('--with-labels', action='store_true', help='segmentors: write the class names')
    args = parser.parse_args()
    inferencer = build_inferencer(args.model, args.weights, device=args.device, palette=args.palette)
    predict_images(inferencer, args.inputs, args.out_dir, score_thr=args.pred_score_thr, batch_size=args.batch_size,
                   save_vis=not args.no_save_vis, save_pred=not args.no_save_pred, show=args.show,
                   opacity=args.opacity, with_labels=args.with_labels)
    print(f'results in {args.out_dir}')


if __name__ == '__main__':
    main()
