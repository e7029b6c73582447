/*
 * Sets of plan indices as base64 bitsets, the way wave rows store them (`counted`, `pass`,
 * `failedIndices`): a 10,000-server wave is 1,250 bytes, well inside a Tables property. Pure.
 */

export function bitIsSet(bits: string, index: number): boolean {
  return isSetIn(Buffer.from(bits, 'base64'), index);
}

export function isSetIn(bytes: Buffer, index: number): boolean {
  return ((bytes[index >> 3] ?? 0) & (1 << (index & 7))) !== 0;
}

export function withBit(bits: string, index: number): string {
  const bytes = Buffer.from(bits, 'base64');
  const grown =
    bytes.length > index >> 3
      ? Buffer.from(bytes)
      : Buffer.concat([bytes, Buffer.alloc((index >> 3) + 1 - bytes.length)]);
  grown[index >> 3] = grown[index >> 3]! | (1 << (index & 7));
  return grown.toString('base64');
}

export function bitsOf(indices: readonly number[]): string {
  const bytes = Buffer.alloc(indices.length === 0 ? 0 : (Math.max(...indices) >> 3) + 1);
  for (const index of indices) bytes[index >> 3] = bytes[index >> 3]! | (1 << (index & 7));
  return bytes.toString('base64');
}

export function setBits(bits: string): number[] {
  const bytes = Buffer.from(bits, 'base64');
  const indices: number[] = [];
  for (let byte = 0; byte < bytes.length; byte++)
    for (let bit = 0; bit < 8; bit++) if (bytes[byte]! & (1 << bit)) indices.push(byte * 8 + bit);
  return indices;
}
