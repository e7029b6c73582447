import { fileURLToPath } from 'node:url';
import { findBicepFiles, loadBicepFiles, type BicepDocument } from '../../../tools/infra-checks/bicep.js';

/** The repository root, and the Bicep documents in it named by their paths from there. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

let documents: Promise<BicepDocument[]> | undefined;

export function repoBicep(): Promise<BicepDocument[]> {
  documents ??= findBicepFiles(repoRoot).then((paths) => loadBicepFiles(paths, repoRoot));
  return documents;
}

export async function repoDocument(file: string): Promise<BicepDocument> {
  const found = (await repoBicep()).find((document) => document.file === file);
  if (!found) throw new Error(`${file} not found among the repository's Bicep files`);
  return found;
}
