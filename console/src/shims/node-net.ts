/** `isIP` of node:net for the browser build of the config schema: 4, 6, or 0 for anything else. */
export function isIP(input: string): number {
  if (/^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(input)) return 4;
  if (!input.includes(':')) return 0;
  try {
    return new URL(`http://[${input}]/`).hostname.length > 2 ? 6 : 0;
  } catch {
    return 0;
  }
}
