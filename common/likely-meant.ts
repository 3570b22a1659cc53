/**
 * What a name that matches nothing most likely meant, for the commands that take a bundled
 * Tesseract's name or a path (`serve`, `generate`): their one-line errors then say the fix.
 */

/** HOST:PORT (`localhost:8000`, `[::1]:8000`): an address where a file or a name was expected. */
export function isHostPort(spec: string): boolean {
  return /^(\[[0-9a-f:.]+\]|[\w.-]+):\d{1,5}$/i.test(spec);
}

/** Lowercase letters and digits alone: `mesh_stats` (tesseract-core's spelling) and `MeshStats` are meshstats. */
const squeezed = (text: string) => text.toLowerCase().replace(/[^a-z0-9]/g, "");

/**
 * The name of `names` that a bare word (no path) spells otherwise (`mesh_stats`, `VectorAdd`) or
 * cuts short or runs on (`meshstat`, `heat2`); undefined for a path, however it starts.
 */
export function nameLike(word: string, names: readonly string[]): string | undefined {
  if (!/^[\w -]+$/.test(word)) return undefined;
  const w = squeezed(word);
  return w.length < 4 ? undefined : names.find((name) => name.startsWith(w) || w.startsWith(name));
}
