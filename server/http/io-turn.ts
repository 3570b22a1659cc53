/**
 * A turn of the event loop for other calls between a request's steps: a big body's parsing,
 * converting, applying and writing take about half a second each (heat of 2 million points, 21 MB
 * in, 38 MB out), and run back to back they held every other call, health checks too, for seconds.
 *
 * One setImmediate is no such turn from the poll phase, where a body's last bytes arrive: it runs
 * in the same loop iteration, before any more I/O is read. A new connection's request (a probe's)
 * needs two polls, one to accept it and one to read it: three immediates in a row give two polls
 * from any phase, at the cost of three loop iterations (microseconds) when nothing waits.
 */
const TURN_IMMEDIATES = 3;

export function otherCallsTurn(): Promise<void> {
  return new Promise<void>((resolve) => {
    let left = TURN_IMMEDIATES;
    const next = () => (--left > 0 ? setImmediate(next) : resolve());
    setImmediate(next);
  });
}
