import { closeSync, openSync, readSync } from 'node:fs';

// Where an asset of the SEA blob is in the executable's file, to read it with read(2): the blob is mapped
// into the process, and an asset read through the mapping stays resident as long as the process runs,
// though the process needs it only once (the bundle's source, which V8 copies; a code cache it deserialises).
// The blob is the ELF note `NODE_SEA_BLOB` that postject writes; in it, Node writes each asset's content after
// its length (src/node_sea.cc), which is what is looked for, with the asset's first bytes. What does not match
// is no answer, and the asset is then read from the mapping as before.

const PT_NOTE = 4;
const NOTE_NAME = 'NODE_SEA_BLOB\0';
/** The blob is searched this much at a time. */
const CHUNK_BYTES = 1024 * 1024;

/** A little-endian 64-bit ELF file, read piece by piece. */
class FileReader {
  constructor(private readonly fd: number) {}

  bytes(at: number, length: number): Buffer {
    const b = Buffer.alloc(length);
    if (readSync(this.fd, b, 0, length, at) !== length) throw new Error('short read');
    return b;
  }

  u32(at: number): number {
    return this.bytes(at, 4).readUInt32LE(0);
  }
}

/** The SEA blob's place in the file: the description of the `NODE_SEA_BLOB` note. */
function blobRange(r: FileReader): { at: number; bytes: number } | undefined {
  const head = r.bytes(0, 64);
  if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return undefined;
  const phoff = Number(head.readBigUInt64LE(0x20));
  const phentsize = head.readUInt16LE(0x36);
  const phnum = head.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = r.bytes(phoff + i * phentsize, 56);
    if (ph.readUInt32LE(0) !== PT_NOTE) continue;
    const start = Number(ph.readBigUInt64LE(8));
    const end = start + Number(ph.readBigUInt64LE(32));
    for (let at = start; at + 12 <= end;) {
      const nameBytes = r.u32(at);
      const descBytes = r.u32(at + 4);
      const desc = at + 12 + align4(nameBytes);
      if (r.bytes(at + 12, nameBytes).toString('latin1') === NOTE_NAME) return { at: desc, bytes: descBytes };
      at = desc + align4(descBytes);
    }
  }
  return undefined;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** Where `needle` first is in the file between `from` and `to`, or -1. */
function find(r: FileReader, needle: Buffer, from: number, to: number): number {
  for (let at = from; at < to; at += CHUNK_BYTES) {
    const chunk = r.bytes(at, Math.min(CHUNK_BYTES + needle.length - 1, to - at));
    const i = chunk.indexOf(needle);
    if (i >= 0) return at + i;
  }
  return -1;
}

/**
 * The SEA asset `mapped` (as `node:sea` gives it) read from the running executable's file instead, or undefined
 * when it is not found there: found by its length and first bytes, and checked by its last ones, which is all
 * of the mapping this touches.
 */
export function readAssetFromFile(mapped: ArrayBuffer, file = process.execPath): Buffer | undefined {
  if (mapped.byteLength < 64) return undefined;
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const r = new FileReader(fd);
    const blob = blobRange(r);
    if (blob === undefined) return undefined;
    const view = Buffer.from(mapped);
    const needle = Buffer.alloc(8 + 32);
    needle.writeBigUInt64LE(BigInt(view.length));
    view.copy(needle, 8, 0, 32);
    const found = find(r, needle, blob.at, blob.at + blob.bytes);
    if (found < 0 || found + 8 + view.length > blob.at + blob.bytes) return undefined;
    const data = r.bytes(found + 8, view.length);
    return data.subarray(data.length - 32).equals(view.subarray(view.length - 32)) ? data : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
