/** The data layer: dataset formats, class-balanced sharding, augmentation and batching. */
export * from "./augment/index.ts";
export { checkIndices, type Dataset, type ReadStats, subsetDataset } from "./dataset.ts";
export { DataError } from "./errors.ts";
export { cifarSplitFiles, encodeCifar, openCifarDataset, readCifarLabels } from "./formats/cifar.ts";
export {
  encodeIdx,
  FASHION_MNIST_CLASSES,
  openIdxDataset,
  parseIdxHeader,
  readIdxHeader,
  readIdxLabels,
} from "./formats/idx.ts";
export { openImageFolder, scanImageFolder } from "./formats/image-folder.ts";
export { openSynthetic, SYNTHETIC_MAX_CLASSES } from "./formats/synthetic.ts";
export { type Batch, BatchLoader, type BatchLoaderOptions, type LoaderState } from "./loader.ts";
export {
  type DatasetSpec,
  datasetSpecSchema,
  openDataset,
  parseDatasetSpec,
  readDatasetLabels,
  selectRecords,
} from "./registry.ts";
export { balancedShards, classCounts, stratifiedSplit } from "./splits.ts";
