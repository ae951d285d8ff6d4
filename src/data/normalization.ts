/**
 * Per-format normalisation constants: the per-channel mean and std (0..1 scale) a training job
 * normalises with when its recipe gives none — what PyTorch training scripts pass to
 * `transforms.Normalize` for that data. Formats that may hold several datasets (IDX: MNIST or
 * Fashion-MNIST; synthetic) keep 0.5 / 0.5; give `augment.normalize` for them (`channelStats`
 * measures a dataset). The values are checked against scripts/reference/data_parity.py.
 */
import type { DatasetSpec } from "./registry.ts";

export interface Normalization {
  mean: number[];
  std: number[];
}

export const NEUTRAL_NORMALIZATION: Normalization = { mean: [0.5], std: [0.5] };

export const FORMAT_NORMALIZATION: Record<DatasetSpec["format"], Normalization> = {
  cifar10: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
  cifar100: { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] },
  /** timm's IMAGENET_DEFAULT_MEAN / STD, what DeiT and the Deep Incubation code use. */
  "image-folder": { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  idx: NEUTRAL_NORMALIZATION,
  synthetic: NEUTRAL_NORMALIZATION,
};

/** Fashion-MNIST's training-set mean and std (the `fashion-mnist` preset sets them). */
export const FASHION_MNIST_NORMALIZATION: Normalization = { mean: [0.286], std: [0.353] };

/** The normalisation a job trains and evaluates with: the recipe's, else its training data format's. */
export function normalizationFor(dataset: DatasetSpec, given?: Normalization): Normalization {
  return given ?? FORMAT_NORMALIZATION[dataset.format];
}
