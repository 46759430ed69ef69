/** `fileURLToPath` of node:url for the browser build of the config schema: the path of a file URL, or a TypeError. */
export function fileURLToPath(input: string | URL): string {
  const url = new URL(input);
  if (url.protocol !== 'file:') throw new TypeError('The URL must be of scheme file');
  if (url.hostname !== '') throw new TypeError('File URL host must be "localhost" or empty');
  if (/%2f/i.test(url.pathname)) throw new TypeError('File URL path must not include encoded / characters');
  return decodeURIComponent(url.pathname);
}
