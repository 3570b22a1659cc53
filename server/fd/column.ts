/** Input elements as colourings see them (colouring.ts, saturation-colouring.ts). */

/** An input element: flat index `index` of leaf `leaf`. */
export interface Column {
  leaf: number;
  index: number;
}

/**
 * Before the next columns: now and then a turn for other calls, a stop where the request was
 * cancelled (Problem.turn). A million columns take seconds to colour, and held every other call, health
 * checks too, for as long.
 */
export type Turn = () => Promise<void> | undefined;

/** Columns coloured between two asks for a turn. */
export const COLUMNS_PER_TURN = 256;
