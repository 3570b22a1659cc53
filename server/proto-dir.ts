import * as fs from "node:fs";
import * as path from "node:path";

/** Walks up from this file (source or dist/) to the package's proto/ folder. */
function findProtoDir(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "proto");
    if (fs.existsSync(path.join(candidate, "tesseract", "v1", "tensor.proto"))) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`proto/ not found above ${__dirname}`);
  }
}

/** The folder holding the contract's .proto files; always on the include path. */
export const PROTO_DIR = findProtoDir();
