/**
 * A server address as people write it: `localhost` or `10.0.0.5` means port 50051 (tesseract-grpc's
 * default), not grpc-js's 443. gRPC targets with a scheme (`dns:///host:port`, `ipv4:…`, `unix:…`)
 * and addresses that name a port are left as they are.
 */
export const DEFAULT_PORT = 50051;

const SCHEME = /^(dns|ipv4|ipv6|unix|unix-abstract|vsock):/i;

export function withDefaultPort(address: string, port = DEFAULT_PORT): string {
  if (SCHEME.test(address) || address.includes("://")) return address;
  if (address.startsWith("[")) return /\]:\d+$/.test(address) ? address : `${address}:${port}`;
  const colons = address.split(":").length - 1;
  if (colons === 0) return `${address}:${port}`;
  if (colons === 1) return address;
  return `[${address}]:${port}`; // a bare IPv6 address
}

/**
 * The HOST:PORT meant by a port alone (`50061`, `:50061`), which gRPC reads as a host (50061 is the
 * IPv4 address 0.0.195.77) and this package completes with port 50051; undefined for anything else.
 */
export function portAloneMeant(address: string): string | undefined {
  const port = /^:?(\d{1,5})$/.exec(address.trim())?.[1];
  return port === undefined ? undefined : `127.0.0.1:${port}`;
}

/**
 * An address written as a URL (`http://127.0.0.1:50051`, `grpc://…`), which gRPC does not take:
 * its scheme (`http://`) and the HOST:PORT to write instead; undefined for anything else.
 */
export function urlAddress(address: string): { scheme: string; hostPort: string } | undefined {
  const url = /^([a-z][a-z0-9+.-]*:\/\/)([^/]*)\/?$/i.exec(address.replace(/^dns:(?=[a-z][a-z0-9+.-]*:\/\/)/i, ""));
  if (!url || /^(dns|unix|unix-abstract|vsock|ipv4|ipv6):/i.test(url[1])) return undefined;
  return { scheme: url[1], hostPort: withDefaultPort(url[2]) };
}

/** What to write instead of an address given as a URL, with the CLI's flag or the SDK's words. */
export function urlAddressHint(address: string, tls: string): string | undefined {
  const url = urlAddress(address);
  if (!url) return undefined;
  return `an address is HOST:PORT, without "${url.scheme}": ${url.hostPort}${/^(https|grpcs):/i.test(url.scheme) ? ` (TLS: ${tls})` : ""}`;
}
