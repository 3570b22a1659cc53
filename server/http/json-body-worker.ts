/** The thread that reads big JSON bodies off the event loop (json-body.ts). */
import { readJsonBody, type ReadBody } from "./json-body";

export default function read(bytes: Uint8Array): ReadBody {
  return readJsonBody(bytes);
}
