/** A bench's numeric setting: `--name VALUE` on the command line, else the environment variable, else the fallback. */
export function numericArg(name: string, env: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? process.argv[i + 1] : process.env[env];
  return value === undefined ? fallback : Number(value);
}
