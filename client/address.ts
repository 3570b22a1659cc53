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
