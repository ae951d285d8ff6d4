/**
 * `incubator meta import <file>`: derive a meta model from a pre-trained ViT (safetensors or
 * ONNX, timm names) into a safetensors file — K of its blocks, its embeddings, norm and head
 * (src/incubation/pretrained.ts). The file serves `incubate --meta` for a target of the same
 * width, heads, patch, image size and classes; registering it with a server is the
 * `importMetaModel` mutation's job (it needs the database), so there is no --name here.
 */
import { basename, extname } from "node:path";
import { Command } from "commander";
import {
  type ImportField,
  importPretrainedMeta,
  type PretrainedFormat,
  PretrainedImportError,
} from "../incubation/pretrained.ts";

interface ImportFlags {
  heads: string;
  modules: string;
  blocks?: string;
  numClasses?: string;
  format?: string;
  out?: string;
  json?: boolean;
}

/** The flag behind each field an import error can be about (the file is named by its message). */
const FLAG: Record<ImportField, string> = {
  path: "",
  format: "--format",
  heads: "--heads",
  modules: "--modules",
  blocks: "--blocks",
  numClasses: "--num-classes",
};

function wholeNumber(flag: string, text: string): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new Error(`${flag}: "${text}" is not a whole number`);
  return Number(text);
}

function formatFlag(text: string | undefined): PretrainedFormat | undefined {
  if (text === undefined) return undefined;
  const format = text.toLowerCase();
  if (format !== "safetensors" && format !== "onnx")
    throw new Error(`--format: "${text}" is not a weights format; use safetensors or onnx`);
  return format;
}

async function importAction(file: string, flags: ImportFlags): Promise<void> {
  const modules = wholeNumber("--modules", flags.modules);
  const format = formatFlag(flags.format);
  const out = flags.out ?? `${basename(file, extname(file))}-meta${modules}.safetensors`;
  let result: Awaited<ReturnType<typeof importPretrainedMeta>>;
  try {
    result = await importPretrainedMeta({
      path: file,
      ...(format ? { format } : {}),
      heads: wholeNumber("--heads", flags.heads),
      modules,
      ...(flags.blocks !== undefined
        ? { blocks: flags.blocks.split(",").map((b) => wholeNumber("--blocks", b)) }
        : {}),
      ...(flags.numClasses !== undefined
        ? { numClasses: wholeNumber("--num-classes", flags.numClasses) }
        : {}),
      out,
    });
  } catch (error) {
    if (error instanceof PretrainedImportError && FLAG[error.field])
      throw new Error(`${FLAG[error.field]}: ${error.message}`);
    throw error;
  }
  const { config, sourceConfig: src, source } = result;
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ out, config, source })}\n`);
    return;
  }
  const prefix = source.strippedPrefix ? `, prefix "${source.strippedPrefix}" stripped` : "";
  const head = source.headReset
    ? `a zero head for ${config.numClasses} classes (source: ${source.sourceNumClasses ?? "no head"})`
    : `the source's head (${config.numClasses} classes)`;
  process.stdout.write(
    [
      `${source.fileName}: ${source.format}, depth ${src.depth}, width ${src.width}, ${src.heads} heads, patch ${src.patchSize}, ${src.imageSize} px, mlp ratio ${src.mlpRatio}${prefix}`,
      `meta blocks 0…${config.depth - 1} ← source blocks ${source.blocks.join(",")}${flags.blocks ? "" : " (evenly spaced: first, last, and between)"}`,
      `wrote ${out}: ${config.depth} blocks with the source's embeddings, final norm and ${head}`,
    ].join("\n") + "\n",
  );
}

export function metaCommand(): Command {
  const meta = new Command("meta").description("meta models: derive one from a pre-trained ViT");
  meta.addCommand(
    new Command("import")
      .description(
        "derive a K-block meta model from a pre-trained ViT (safetensors or ONNX, timm names) into a safetensors file",
      )
      .argument("<file>", "the pre-trained ViT (.safetensors or .onnx)")
      .requiredOption("--heads <n>", "attention heads of the source (not readable from the shapes)")
      .requiredOption("--modules <k>", "K: meta stages, one per module of the targets it will serve")
      .option("--blocks <list>", "source block of each meta stage, e.g. 0,4,7,11 (default: evenly spaced)")
      .option("--num-classes <n>", "give the meta model a zero head for this many classes")
      .option("--format <format>", "safetensors or onnx (default: from the extension)")
      .option("-o, --out <file>", "where the meta model goes (default: <file>-meta<K>.safetensors)")
      .option("--json", "print one JSON object (out, config, source) instead of the summary")
      .action(importAction),
  );
  return meta;
}
